// Package e2e holds Parley's end-to-end tests: the all-in-one binary is built
// and started as a real process, then driven over HTTP (and, in later tiers,
// WebSocket and a headless browser) the way a user or a third party would.
package e2e
