# The Beaker image: CUDA, a CUDA build of PyTorch, and this project (olmo-tui + its engine)
# at /opt/olmo-tui. Jobs launched with launch.beaker.code_in_image=true run this code;
# otherwise they clone their commit and put it first on PYTHONPATH (the dependencies come
# from here, so rebuild the image when pyproject.toml changes).
#
#   make docker-image CUDA_VERSION=12.8.1 TORCH_VERSION=2.13.0 TORCH_CUDA=cu128
#
# The install step is the README's: `make install` with PyTorch's CUDA index.
ARG CUDA_VERSION=12.8.1
FROM nvidia/cuda:${CUDA_VERSION}-cudnn-runtime-ubuntu24.04

ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA=cu128
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

# Versions come from the pinned base image's Ubuntu release; git clones the job's commit.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv make git ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/olmo-tui
COPY . .
RUN make install VENV=/opt/venv TORCH_VERSION="${TORCH_VERSION}" \
        TORCH_INDEX="https://download.pytorch.org/whl/${TORCH_CUDA}"
ENV PATH=/opt/venv/bin:$PATH

# The job's command comes from the Beaker spec (bash -c NODE_SCRIPT); this is for `docker run`.
CMD ["olmo-tui", "--help"]
