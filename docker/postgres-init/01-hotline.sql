-- The warehouse lives in its own database beside Airflow's metadata database.
CREATE DATABASE hotline OWNER airflow;
