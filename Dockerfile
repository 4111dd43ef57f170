# The serving image: the FastAPI service, onnxruntime, OpenCV and the repository's model store; no torch, no
# compilers, no tests, no data. Build and run (docs/deploy.md has the rest):
#   docker build -t microexp:0.1.0 .
#   docker run --rm -p 127.0.0.1:8000:8000 microexp:0.1.0
# Only classic Dockerfile syntax (no BuildKit-only features), so the legacy builder and BuildKit build it alike.

# --- wheels: every wheel the image installs, checked against the hashes in the lock files ---------------------
# Only wheel files leave this stage. The python image is used for its CA certificates and pip; its interpreter
# never reaches the runtime image, which uses Debian's python3 (see `python` below).
FROM python:3.11-slim AS wheels
WORKDIR /src
COPY requirements/ requirements/
RUN python3 -m venv /opt/build \
 && /opt/build/bin/python -m pip download --no-cache-dir --only-binary=:all: --dest /wheels/build \
      --requirement requirements/build.txt \
 && /opt/build/bin/python -m pip install --no-cache-dir --no-index --find-links=/wheels/build \
      --requirement requirements/build.txt \
 && /opt/build/bin/pip download --no-cache-dir --only-binary=:all: --dest /wheels/deps \
      --requirement requirements/serve.txt
# The project's wheel holds only the packages copied here: serving never needs trainer/.
COPY pyproject.toml README.md ./
COPY model_store/ model_store/
COPY service/ service/
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels/app .

# --- python: Debian's python3, shared by the installing stage and the runtime ----------------------------------
# The virtual environment is built and run by the same interpreter at the same path, whichever python image
# fetched the wheels.
FROM debian:bookworm-slim AS python
# Debian stable's point releases carry only security fixes and its mirrors drop superseded versions, so the
# base tag pins the release and an exact package version would only break the build at the next fix.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/*

# --- venv: the locked dependencies, installed offline from the wheels ---------------------------------------------
FROM python AS venv
COPY --from=wheels /src/requirements/serve.txt /wheels/serve.txt
COPY --from=wheels /wheels/build/pip-*.whl /wheels/pip.whl
COPY --from=wheels /wheels/deps /wheels/deps
# pip runs from its own wheel, so the environment gets no pip (nor setuptools) of its own. Dropped, as nothing here
# runs them: the test suites some dependencies bundle (numpy's, for one), onnxruntime's model-conversion tooling
# (transformers, quantization, tools: 8 MB of Python the runtime never imports) and OpenCV's cascades but the one
# face cascade the Haar detector loads (model_store/faces.py; the image test detects with it).
RUN python3 -m venv --without-pip /opt/venv \
 && /opt/venv/bin/python /wheels/pip.whl/pip install --no-cache-dir --no-index \
      --find-links=/wheels/deps --require-hashes --requirement /wheels/serve.txt \
 && find /opt/venv -depth -type d -name tests -exec rm -r {} + \
 && site=$(/opt/venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") \
 && rm -r "$site/onnxruntime/transformers" "$site/onnxruntime/quantization" "$site/onnxruntime/tools" \
 && find "$site/cv2/data" -name '*.xml' ! -name haarcascade_frontalface_default.xml -delete
# The project goes to its own folder (its own small layer, so a code change does not re-ship the dependencies).
# Its console scripts are left out: the image runs `python -m service`.
COPY --from=wheels /wheels/app /wheels/app
RUN /opt/venv/bin/python /wheels/pip.whl/pip install --no-cache-dir --no-index --no-deps --target /opt/app \
      /wheels/app/*.whl \
 && rm -r /opt/app/bin \
 && PYTHONPATH=/opt/app /opt/venv/bin/python /wheels/pip.whl/pip check

# --- rootfs: the operating system and python3, without what only apt and people read ---------------------------
# Copied into an empty image below as one layer, so the apt caches, package lists, manuals and translations of the
# base image are not shipped underneath (deleting them in a later layer would not make the image smaller).
FROM python AS rootfs
RUN rm -rf /var/cache/apt/* /usr/share/man/* /usr/share/info/* /usr/share/locale/* \
 && find /usr/share/doc -type f ! -name copyright -delete \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
      microexp

# --- runtime ----------------------------------------------------------------------------------------------------
FROM scratch AS runtime
LABEL org.opencontainers.image.title="microexp" \
      org.opencontainers.image.description="Facial-expression recognition over HTTP: MicroExpNet students on onnxruntime" \
      org.opencontainers.image.licenses="MIT"
# The whole of `rootfs` on purpose: that stage holds only the OS and python3 (no build tools, no apt state).
# hadolint ignore=DL3067
COPY --from=rootfs / /
COPY --from=venv /opt/venv /opt/venv
COPY --from=venv /opt/app /opt/app
# Owned by root and read-only to the service; a store mounted at run time replaces it (-v STORE:/app/models:ro).
COPY models/ /app/models/
WORKDIR /app
# ORT_DISABLE_TELEMETRY: onnxruntime's Linux builds upload usage telemetry unless this is set; the service must not
# call out (and a read-only root cannot hold the device id it would write anyway).
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/opt/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ORT_DISABLE_TELEMETRY=1 \
    MICROEXP_HOST=0.0.0.0 \
    MICROEXP_PORT=8000 \
    MICROEXP_STORE=/app/models
# A numeric user, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ['MICROEXP_PORT'], timeout=2)"]
CMD ["python", "-m", "service"]
