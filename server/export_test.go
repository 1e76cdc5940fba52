package server

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// ClusterOption exposes clusterOption, defaults applied, to the tests of
// package server_test.
func ClusterOption(r RedisConfig, recovering bool, log *slog.Logger, reg prometheus.Registerer) (Option, error) {
	return clusterOption(r.withDefaults(), recovering, log, reg)
}
