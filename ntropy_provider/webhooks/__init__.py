"""Ntropy webhooks -> Airflow asset events.

``ntropy_provider.webhooks.app`` is the receiver (a FastAPI app), ``plugin`` mounts it on Airflow's API
server, ``assets`` names the asset it records on (import that one from DAG files: it is light).
"""
