# Tingxie (听写) container image: the service and the `tingxie` command.
#
# CPU (the default base is Debian 12's slim image):
#   podman build -t tingxie:cpu .
# NVIDIA GPUs: a CUDA + cuDNN runtime base (CTranslate2 needs cuBLAS and cuDNN 9), run with the
# host's GPUs exposed (podman: --device nvidia.com/gpu=all; docker: --gpus all):
#   podman build --build-arg BASE_IMAGE=docker.io/nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 -t tingxie:cuda .
# PIP_EXTRA_INDEX_URL picks where torch comes from (e.g. PyTorch's CPU or CUDA wheel index).
# scripts/build-container.sh builds it offline-friendly (a debootstrap base, the host's pip config
# mounted for the build only) and transcribes a clip through the running image; see docs.
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim
FROM ${BASE_IMAGE}

ARG PIP_EXTRA_INDEX_URL=""
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv \
    && useradd --system --create-home --home-dir /var/lib/tingxie tingxie \
    && install -d -o tingxie -g tingxie /var/lib/tingxie/media /var/lib/tingxie/models /var/lib/tingxie/logs

WORKDIR /opt/tingxie
# Dependencies first: a code change does not reinstall them.
COPY requirements.txt requirements-nodeps.txt ./
RUN pip install -r requirements.txt && pip install --no-deps -r requirements-nodeps.txt
COPY . .
RUN pip install --no-deps . && rm -rf /opt/tingxie/build

# Everything the service writes lives in one volume: the SQLite database (unless DATABASE_URL
# names MySQL/PostgreSQL), media, logs and the models assembled from their pip packages.
ENV SERVER__HOST=0.0.0.0 \
    DATABASE_URL=sqlite:////var/lib/tingxie/tingxie.db \
    STORAGE__MEDIA_DIR=/var/lib/tingxie/media \
    LOGGING__DIR=/var/lib/tingxie/logs \
    WHISPER__MODEL_DIR=/var/lib/tingxie/models
USER tingxie
WORKDIR /var/lib/tingxie
VOLUME ["/var/lib/tingxie"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 CMD ["tingxie", "health"]
CMD ["tingxie", "serve"]
