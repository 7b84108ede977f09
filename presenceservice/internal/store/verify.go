package store

import (
	"context"
	"fmt"
	"strings"
)

// Verify checks the invariants that tie the keys together and returns an
// error describing the first violations found:
//
//   - every connection in a node's map is in its user's connection set,
//     and every member of a user's set is in that node's map for that user;
//   - every node holding connections is in the node index;
//   - a user without connections who ever changed has a last-seen time.
//
// It scans the whole key space under the prefix, so it is for tests and
// for operators investigating, not for request paths.
func (s *RedisState) Verify(ctx context.Context) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	p := s.cfg.Prefix
	var problems []string
	report := func(format string, args ...any) {
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}

	nodeKeys, err := s.scan(ctx, p+"nc:")
	if err != nil {
		return err
	}
	nodes := map[string]map[string]string{} // node -> conn -> user
	for _, k := range nodeKeys {
		node := strings.TrimPrefix(k, p+"nc:")
		m, err := s.rdb.HGetAll(ctx, k).Result()
		if err != nil {
			return fmt.Errorf("%w: verify: %w", ErrRedis, err)
		}
		conns := make(map[string]string, len(m))
		for c, val := range m {
			u, _, ok := strings.Cut(val, "|")
			if !ok {
				report("node %s: connection %s has malformed value %q", node, c, val)
			}
			conns[c] = u
		}
		nodes[node] = conns
		if len(conns) > 0 {
			if err := s.rdb.ZScore(ctx, p+"nodes", node).Err(); err != nil {
				report("node %s holds %d connections but is not in the node index (%v)", node, len(conns), err)
			}
		}
	}
	for node, conns := range nodes {
		for c, u := range conns {
			ok, err := s.rdb.SIsMember(ctx, p+"uc:"+u, node+"/"+c).Result()
			if err != nil {
				return fmt.Errorf("%w: verify: %w", ErrRedis, err)
			}
			if !ok {
				report("node %s: connection %s of %s missing from the user's set", node, c, u)
			}
		}
	}

	userSets, err := s.scan(ctx, p+"uc:")
	if err != nil {
		return err
	}
	for _, k := range userSets {
		u := strings.TrimPrefix(k, p+"uc:")
		members, err := s.rdb.SMembers(ctx, k).Result()
		if err != nil {
			return fmt.Errorf("%w: verify: %w", ErrRedis, err)
		}
		for _, m := range members {
			node, c, ok := strings.Cut(m, "/")
			if !ok || nodes[node][c] != u {
				report("user %s: connection %q not held by its node", u, m)
			}
		}
	}

	userKeys, err := s.scan(ctx, p+"u:")
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(userKeys))
	for _, k := range userKeys {
		ids = append(ids, strings.TrimPrefix(k, p+"u:"))
	}
	for i := 0; i < len(ids); i += 500 {
		rs, err := s.Load(ctx, ids[i:min(i+500, len(ids))])
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.Devices == 0 && r.Version > 0 && r.LastSeen.IsZero() {
				report("user %s: offline after %d changes but no last-seen time", r.UserID, r.Version)
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInconsistent, strings.Join(problems, "; "))
	}
	return nil
}

// scan returns the keys starting with prefix.
func (s *RedisState) scan(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	iter := s.rdb.Scan(ctx, 0, globEscape(prefix)+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("%w: scan %s*: %w", ErrRedis, prefix, err)
	}
	return keys, nil
}

// globEscape quotes the characters SCAN MATCH treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
