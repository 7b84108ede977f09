package hub

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleyhq/parley/gateway/internal/hub/protocol"
)

// Label values outside the protocol's frame types, so a client cannot grow
// the label sets with made-up types.
const (
	labelInvalid = "invalid" // frames in that failed to decode
	labelOther   = "other"   // frames out of a type the protocol does not know
)

// metrics are the hub's Prometheus metrics. Counters per frame type are
// resolved once, so the hot path does an array index and an atomic add.
type metrics struct {
	connections   prometheus.Gauge
	framesIn      *prometheus.CounterVec
	framesOut     *prometheus.CounterVec
	fanoutLatency prometheus.Histogram
	slowConsumer  prometheus.Counter
	rateLimited   *prometheus.CounterVec
	closes        *prometheus.CounterVec
	natsDropped   prometheus.Counter
	recoveries    prometheus.Counter

	in  map[string]prometheus.Counter
	out []prometheus.Counter // indexed by frameKind
}

func newMetrics() *metrics {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_gateway_connections",
			Help: "Open WebSocket connections.",
		}),
		framesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_gateway_frames_in_total",
			Help: "WebSocket frames received, by type (invalid: failed to decode).",
		}, []string{"type"}),
		framesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_gateway_frames_out_total",
			Help: "WebSocket frames written, by type.",
		}, []string{"type"}),
		fanoutLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "parley_gateway_fanout_latency_seconds",
			Help: "From a realtime frame's publication (its timestamp, else its arrival from NATS) to its write to a client socket.",
			Buckets: []float64{
				.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5,
			},
		}),
		slowConsumer: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_gateway_slow_consumer_closes_total",
			Help: "Connections closed with 4013 because their send queue overflowed.",
		}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_gateway_rate_limited_total",
			Help: "Frames refused by a rate limit, by class (messages, typing, joins, other), connections refused by a cap (conns_ip, conns_user), connections refused because no setup slot came in time (setups), and closed connections whose presence disconnect was skipped for the same reason (teardowns).",
		}, []string{"class"}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_gateway_closes_total",
			Help: "Connections closed by the server, by close code.",
		}, []string{"code"}),
		natsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_gateway_nats_dropped_total",
			Help: "Realtime NATS messages dropped as undecodable or because the presence pump was behind.",
		}),
		recoveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_gateway_recoveries_total",
			Help: "Channel catch-ups run after a gap in the live stream or a NATS reconnection.",
		}),
		in: make(map[string]prometheus.Counter),
	}
	for _, t := range append(protocol.ClientTypes(), labelInvalid) {
		m.in[t] = m.framesIn.WithLabelValues(t)
	}
	m.out = make([]prometheus.Counter, numKinds)
	for k := range frameKind(numKinds) {
		m.out[k] = m.framesOut.WithLabelValues(k.String())
	}
	for _, c := range []string{classMessages.String(), classTyping.String(), classJoins.String(), classOther.String(), "conns_ip", "conns_user", setupsClass, teardownsClass} {
		m.rateLimited.WithLabelValues(c)
	}
	return m
}

// setupsClass labels connections refused for want of a setup slot;
// teardownsClass closed connections whose presence disconnect was skipped
// for want of one.
const (
	setupsClass    = "setups"
	teardownsClass = "teardowns"
)

// frameIn counts a received frame; t must already be a client type or
// labelInvalid.
func (m *metrics) frameIn(t string) {
	if c, ok := m.in[t]; ok {
		c.Inc()
		return
	}
	m.in[labelInvalid].Inc()
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		m.connections, m.framesIn, m.framesOut, m.fanoutLatency, m.slowConsumer,
		m.rateLimited, m.closes, m.natsDropped, m.recoveries,
	}
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}
