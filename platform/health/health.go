// Package health answers "is this process alive" and "can it serve
// traffic": HTTP handlers for Kubernetes probes (/healthz, /readyz) and the
// standard gRPC health service, both driven by the same dependency checks
// (MongoDB, NATS, Redis, ...).
package health

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

const (
	// CheckTimeout bounds one round of checks, all run concurrently; a
	// probe must answer well inside the kubelet's default 1 s..10 s.
	CheckTimeout = 2 * time.Second
	// DefaultInterval is how often Run re-checks for gRPC Watch clients.
	DefaultInterval = 5 * time.Second
)

// Check reports whether one dependency is usable; it must return when ctx
// is done.
type Check func(ctx context.Context) error

// Report is the outcome of one round of checks.
type Report struct {
	// Status is "ok", "unavailable" or "draining".
	Status string `json:"status"`
	// Checks maps each check's name to "ok" or its error.
	Checks map[string]string `json:"checks"`
}

// OK reports whether every check passed and the process is not draining.
func (r Report) OK() bool { return r.Status == statusOK }

const (
	statusOK          = "ok"
	statusUnavailable = "unavailable"
	statusDraining    = "draining"
)

// Health runs the checks and publishes their outcome.
type Health struct {
	logger   *slog.Logger
	grpc     *grpchealth.Server
	draining atomic.Bool

	mu       sync.Mutex
	names    []string // sorted, for stable reports
	checks   map[string]Check
	interval time.Duration
}

// New returns a Health without checks (always ready until SetDraining).
// logger may be nil.
func New(logger *slog.Logger) *Health {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Health{
		logger:   logger,
		grpc:     grpchealth.NewServer(),
		checks:   map[string]Check{},
		interval: DefaultInterval,
	}
}

// Add registers a check under name, replacing any check of that name.
func (h *Health) Add(name string, c Check) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.checks[name]; !ok {
		h.names = append(h.names, name)
		sort.Strings(h.names)
	}
	h.checks[name] = c
}

// SetInterval changes how often Run re-checks; call it before Run.
func (h *Health) SetInterval(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d > 0 {
		h.interval = d
	}
}

// SetDraining marks the process as shutting down: readiness fails from now
// on, so load balancers stop sending new work while running work finishes.
// It cannot be undone.
func (h *Health) SetDraining() {
	h.draining.Store(true)
	// Shutdown sets every service NOT_SERVING and ignores later updates.
	h.grpc.Shutdown()
}

// CheckNow runs every check concurrently, bounded by CheckTimeout, updates
// the gRPC serving status and returns the outcome.
func (h *Health) CheckNow(ctx context.Context) Report {
	if h.draining.Load() {
		return Report{Status: statusDraining, Checks: map[string]string{}}
	}
	h.mu.Lock()
	names := append([]string(nil), h.names...)
	checks := make([]Check, len(names))
	for i, n := range names {
		checks[i] = h.checks[n]
	}
	h.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	type result struct {
		name string
		err  error
	}
	// Buffered, so a check that overstays the deadline can still finish
	// and exit instead of blocking forever on a reader that has left.
	results := make(chan result, len(names))
	for i, name := range names {
		go func() {
			results <- result{name: name, err: safeCheck(ctx, checks[i])}
		}()
	}
	rep := Report{Status: statusOK, Checks: make(map[string]string, len(names))}
	for range names {
		select {
		case r := <-results:
			if r.err != nil {
				rep.Checks[r.name] = r.err.Error()
				rep.Status = statusUnavailable
			} else {
				rep.Checks[r.name] = statusOK
			}
		case <-ctx.Done():
		}
	}
	for _, n := range names {
		if _, ok := rep.Checks[n]; !ok {
			rep.Checks[n] = fmt.Sprintf("no answer within %s", CheckTimeout)
			rep.Status = statusUnavailable
		}
	}
	h.publish(rep)
	return rep
}

// safeCheck keeps a panicking check from taking the process down with it.
func safeCheck(ctx context.Context, c Check) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrCheckPanicked, p)
		}
	}()
	return c(ctx)
}

func (h *Health) publish(rep Report) {
	st := healthpb.HealthCheckResponse_SERVING
	if !rep.OK() {
		st = healthpb.HealthCheckResponse_NOT_SERVING
		h.logger.Warn("not ready", slog.Any("checks", rep.Checks))
	}
	h.grpc.SetServingStatus("", st)
}

// Run re-checks every interval until ctx is done, so gRPC Watch clients
// see changes without anybody probing.
func (h *Health) Run(ctx context.Context) {
	h.mu.Lock()
	interval := h.interval
	h.mu.Unlock()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		h.CheckNow(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Live is the liveness handler (/healthz): 200 as long as the process
// serves HTTP at all. It runs no checks: a dead database must not make
// Kubernetes restart healthy pods.
func (h *Health) Live() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, h.logger, http.StatusOK, Report{Status: statusOK, Checks: map[string]string{}})
	})
}

// Ready is the readiness handler (/readyz): 200 with the report when every
// check passes, 503 with it otherwise or while draining.
func (h *Health) Ready() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := h.CheckNow(r.Context())
		code := http.StatusOK
		if !rep.OK() {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, h.logger, code, rep)
	})
}

func writeJSON(w http.ResponseWriter, logger *slog.Logger, code int, rep Report) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if err := json.NewEncoder(w).Encode(rep); err != nil {
		logger.Debug("write health response", slog.Any("error", err))
	}
}

// RegisterGRPC registers the standard gRPC health service
// (grpc.health.v1.Health) on s. Its overall status (service "") follows
// the checks: a Check call runs them, Watch streams follow Run.
func (h *Health) RegisterGRPC(s *grpc.Server) {
	healthpb.RegisterHealthServer(s, &grpcService{Server: h.grpc, h: h})
}

// grpcService answers Check for the overall status by running the checks,
// like /readyz, so it is right even when Run is not running.
type grpcService struct {
	*grpchealth.Server
	h *Health
}

func (g *grpcService) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if req.GetService() == "" {
		g.h.CheckNow(ctx)
	}
	return g.Server.Check(ctx, req)
}
