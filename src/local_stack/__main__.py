"""`make run`: the local stack is not assembled yet."""

print("not yet: the operator is still being built")
