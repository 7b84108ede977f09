package embedded

import (
	"context"
	"log/slog"
	"slices"
)

// componentLogger returns the logger a backend logs through: nil means
// "discard", because library users that pass no logger asked for silence.
func componentLogger(l *slog.Logger, component string) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.With(slog.String("component", component))
}

// minLevelHandler drops records below a level, for libraries whose logs
// would drown the application's own. Attributes and groups added with
// With are applied only when a record passes: FerretDB adds some to its
// logger for every SQL statement, and formatting them ahead for records
// that are then dropped cost 1-2 % of the all-in-one's CPU under load.
type minLevelHandler struct {
	slog.Handler
	min slog.Level
	// with are the pending WithAttrs and WithGroup calls, in order.
	with []func(slog.Handler) slog.Handler
}

func (h minLevelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevelHandler) Handle(ctx context.Context, r slog.Record) error {
	next := h.Handler
	for _, with := range h.with {
		next = with(next)
	}
	return next.Handle(ctx, r)
}

func (h minLevelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return h.then(func(next slog.Handler) slog.Handler { return next.WithAttrs(as) })
}

func (h minLevelHandler) WithGroup(name string) slog.Handler {
	return h.then(func(next slog.Handler) slog.Handler { return next.WithGroup(name) })
}

// then returns h with one more pending call; the slice is copied, since
// handlers derived from one logger share it.
func (h minLevelHandler) then(with func(slog.Handler) slog.Handler) slog.Handler {
	h.with = append(slices.Clip(h.with), with)
	return h
}
