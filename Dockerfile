# The production image: API and workers share it; the command picks the role.
FROM python:3.11-slim
WORKDIR /opt/defect-genome
COPY pyproject.toml README.md alembic.ini ./
# every package of [tool.setuptools.packages.find] in pyproject.toml
COPY app ./app
COPY workers ./workers
COPY sampling ./sampling
COPY pcc_gcmc ./pcc_gcmc
COPY schemas ./schemas
COPY labelling ./labelling
COPY mlip ./mlip
COPY alembic ./alembic
# Editable install keeps alembic/ beside the packages, where `defect-genome db upgrade` finds it.
RUN pip install --no-cache-dir -e .
# API and workers run unprivileged: a task runs LAMMPS and DFT codes on inputs from the network. The
# code stays root's (read-only to them); the data directory is theirs. /data is created and owned
# before VOLUME, so a new named volume starts with that owner.
RUN groupadd --system --gid 10001 dg \
    && useradd --system --uid 10001 --gid dg --create-home --home-dir /home/dg --shell /usr/sbin/nologin dg \
    && mkdir -p /data \
    && chown dg:dg /data
ENV DG_DATA_DIR=/data
VOLUME /data
USER dg
CMD ["defect-genome", "serve", "--host", "0.0.0.0", "--port", "8000"]
