"""Grafana provisioning and the shipped dashboards (`python -m deploy.grafana.build_dashboards`)."""
