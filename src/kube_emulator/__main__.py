"""`python -m kube_emulator serve ...`: see `kube_emulator.cli`."""

from kube_emulator.cli import main

if __name__ == "__main__":
    main()
