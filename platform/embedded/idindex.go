package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the driver FerretDB itself uses, registered as "sqlite"
)

// FerretDB v1.24's SQLite backend looks a document up by _id with
//
//	WHERE _ferretdb_sjson->'$._id' = ?
//
// but creates the _id index on _ferretdb_sjson->"_id". SQLite uses an
// expression index only for the same expression, so every lookup by _id
// (a find, an update or a delete of one document) scans the whole table
// and parses every document's JSON: a membership check in a channel with
// 10,000 memberships cost milliseconds, and sends stalled under load.
//
// The embedded server therefore adds, to every collection's table, an
// index on the expression the lookups use. FerretDB does not know about
// it and does not need to: it is maintained by SQLite on every write and
// dropped with the table. The index is not unique; FerretDB's own _id
// index enforces uniqueness.

// idIndexSuffix names the added index: "<table>" + idIndexSuffix.
const idIndexSuffix = "_parley_id_lookup"

// idIndexInterval is how often the embedded server looks for collections
// created since (FerretDB creates a collection's table on its first write
// or index).
const idIndexInterval = 2 * time.Second

// indexIDs adds the lookup index to every collection table of every
// database file in dir that lacks it, and returns how many it created.
func indexIDs(ctx context.Context, dir string) (int, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.sqlite"))
	if err != nil {
		return 0, err
	}
	created := 0
	var errs []error
	for _, f := range files {
		n, err := indexIDsIn(ctx, f)
		created += n
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("%s: %w", filepath.Base(f), err))
		}
	}
	return created, errors.Join(errs...)
}

// indexIDsIn handles one database file. It opens the file read-write
// without creating it (a database dropped meanwhile stays dropped) and
// waits for FerretDB's writers like FerretDB does (busy_timeout).
func indexIDsIn(ctx context.Context, path string) (int, error) {
	if _, err := os.Stat(path); err != nil {
		return 0, err
	}
	q := url.Values{}
	q.Add("mode", "rw")
	q.Add("_pragma", "busy_timeout(10000)")
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String())
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	rows, err := db.QueryContext(ctx, `
		SELECT t.name FROM sqlite_master t
		WHERE t.type = 'table' AND t.name NOT LIKE '\_ferretdb\_%' ESCAPE '\'
		AND NOT EXISTS (SELECT 1 FROM sqlite_master i WHERE i.type = 'index' AND i.name = t.name || ?)`,
		idIndexSuffix)
	if err != nil {
		return 0, err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			_ = rows.Close()
			return 0, err
		}
		tables = append(tables, t)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, err
	}
	created := 0
	for _, t := range tables {
		stmt := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s ON %s (_ferretdb_sjson->'$._id')`,
			quoteIdent(t+idIndexSuffix), quoteIdent(t))
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			if strings.Contains(err.Error(), "no such table") {
				continue // dropped since the listing
			}
			return created, fmt.Errorf("index %s: %w", t, err)
		}
		created++
	}
	return created, nil
}

// quoteIdent quotes an SQLite identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
