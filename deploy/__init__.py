"""What compose.yaml mounts into Prometheus and Grafana, and the generator of the dashboards."""
