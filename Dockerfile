# The production image: API and workers share it; the command picks the role.
FROM python:3.11-slim
WORKDIR /opt/defect-genome
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY workers ./workers
COPY sampling ./sampling
COPY pcc_gcmc ./pcc_gcmc
COPY schemas ./schemas
COPY alembic ./alembic
# Editable install keeps alembic/ beside the packages, where `defect-genome db upgrade` finds it.
RUN pip install --no-cache-dir -e .
ENV DG_DATA_DIR=/data
VOLUME /data
CMD ["defect-genome", "serve", "--host", "0.0.0.0", "--port", "8000"]
