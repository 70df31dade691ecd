# The demo server in one container: embedded Redis, one worker and gunicorn (what `make run` starts).
# For several workers or an external Redis, run worker.py and gunicorn in separate containers with
# REDIS_URL, RESULTS_DIR and UPLOAD_DIR set (README.md, "More workers, another Redis").
FROM python:3.11-slim

WORKDIR /srv/visnet
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .

ENV VISNET_INSTANCE_DIR=/data \
    VISNET_BIND=0.0.0.0:8000 \
    PYTHONUNBUFFERED=1
VOLUME /data
EXPOSE 8000
CMD ["python", "-m", "app.serve"]
