# The team image: the official Airflow image with gonogo installed.
# Built once (`docker compose build`); nothing is downloaded at run time.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:root pyproject.toml README.md constraints-3.11.txt /opt/gonogo/
COPY --chown=airflow:root plugins/gonogo /opt/gonogo/plugins/gonogo
RUN pip install --no-cache-dir -c /opt/gonogo/constraints-3.11.txt "/opt/gonogo[team]" "apache-airflow==3.3.2"
