# syntax=docker/dockerfile:1
# The operator's container image. Build it from the repository root:
#
#   docker build -t ghcr.io/azure-identity-operator/azure-identity-operator:0.1.0 .
#
# Two stages on one pinned base. `build` turns the operator and its exactly pinned dependencies into
# wheels; `runtime` installs those wheels and nothing else, so no build backend, compiler, pip cache,
# test code or emulator reaches the final image. The build context is narrowed by .dockerignore.

# Pinned by tag for readers and by digest for reproducibility (a tag can be re-pushed, a digest cannot).
# Update both together.
FROM python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1 AS python-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

FROM python-base AS build
WORKDIR /src
COPY deploy/image/build-requirements.txt deploy/image/constraints.txt ./deploy/image/
RUN pip install --no-cache-dir --requirement deploy/image/build-requirements.txt
COPY pyproject.toml README.md ./
# Only the operator package: the emulators and local_stack under src/ are development tools.
COPY src/azure_identity_operator ./src/azure_identity_operator
# The operator's wheel plus a wheel of every dependency at its pinned version. Build isolation is off so
# the backend pinned above is the one used.
RUN pip wheel --no-cache-dir --no-build-isolation --constraint deploy/image/constraints.txt \
        --wheel-dir /wheels .

FROM python-base AS runtime
LABEL org.opencontainers.image.title="azure-identity-operator" \
      org.opencontainers.image.description="Azure managed identities and role assignments as Kubernetes objects" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/azure-identity-operator/azure-identity-operator" \
      org.opencontainers.image.version="0.1.0"
# A fixed numeric UID/GID, so the pod's runAsNonRoot can verify it without resolving a name, and present
# in /etc/passwd, because kopf's peering identity looks the user name up.
RUN groupadd --system --gid 65532 operator \
    && useradd --system --no-log-init --uid 65532 --gid 65532 \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin operator
# The wheels are bind-mounted from the build stage rather than copied, so they never form a layer.
# --no-index: every dependency must come from those wheels; `pip check` proves the set is complete.
# pip, setuptools and wheel are then removed: the running operator needs none of them.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index /wheels/*.whl \
    && pip check \
    && pip uninstall --yes setuptools wheel pip
USER 65532:65532
# Liveness (kopf's /healthz) and Prometheus metrics with /readyz, as the Deployment in deploy/ wires them.
EXPOSE 8080 9090
ENTRYPOINT ["python", "-m", "azure_identity_operator"]
