# VisNet: one image, two commands (compose.yaml runs both against one Redis):
#   web:     python -m gunicorn -c gunicorn.conf.py      (the default command)
#   worker:  python worker.py --supervise
# Results and uploads go to /data (a volume, shared by web and workers).
#   docker build -t visnet .                                    # CPU
#   docker build --build-arg TENSORFLOW_EXTRA=and-cuda -t visnet:gpu .
# The GPU variant adds NVIDIA's CUDA and cuDNN wheels (tensorflow[and-cuda], same TensorFlow version);
# run it with the NVIDIA container toolkit (README.md, "Running in production").
# For a one-container demo with an embedded Redis: docker run -p 8000:8000 visnet python -m service.serve
FROM python:3.11-slim

ARG TENSORFLOW_EXTRA=""
WORKDIR /srv/visnet
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt \
 && if [ -n "$TENSORFLOW_EXTRA" ]; then \
      pip install --no-cache-dir "$(grep '^tensorflow==' requirements.txt | sed "s/==/[$TENSORFLOW_EXTRA]==/")"; \
    fi
COPY . .

RUN useradd --system --uid 1000 --home-dir /srv/visnet visnet \
 && mkdir -p /data/results /data/uploads /data/instance && chown -R visnet /data
USER visnet
ENV RESULTS_DIR=/data/results \
    UPLOAD_DIR=/data/uploads \
    VISNET_INSTANCE_DIR=/data/instance \
    VISNET_BIND=0.0.0.0:8000 \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2
VOLUME /data
EXPOSE 8000
CMD ["python", "-m", "gunicorn", "-c", "gunicorn.conf.py"]
