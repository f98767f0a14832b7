// Package dashboards ships the Grafana dashboards (*.json) and Prometheus
// alert rules (alerts.yml, tested by alerts_test.yml) for saas_exporter.
//
// Expressions lists every PromQL expression in them so tests can check the
// expressions against the exporter's metrics and run them against a real
// Prometheus.
package dashboards
