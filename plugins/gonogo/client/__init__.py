"""The ``gonogo`` command line and the REST client it talks to Airflow with. No Airflow import."""
