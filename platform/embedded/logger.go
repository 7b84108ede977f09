package embedded

import (
	"context"
	"log/slog"
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
// would drown the application's own.
type minLevelHandler struct {
	slog.Handler
	min slog.Level
}

func (h minLevelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevelHandler{Handler: h.Handler.WithAttrs(as), min: h.min}
}

func (h minLevelHandler) WithGroup(name string) slog.Handler {
	return minLevelHandler{Handler: h.Handler.WithGroup(name), min: h.min}
}
