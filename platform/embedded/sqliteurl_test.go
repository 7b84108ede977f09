package embedded

import (
	"database/sql"
	"net/url"
	"path/filepath"
	"slices"
	"testing"
)

// The durability setting and the in-memory statement journals reach
// SQLite as pragmas on the URL FerretDB opens, next to nothing that would
// stop FerretDB adding its own; and the driver applies them.
func TestSQLiteURL(t *testing.T) {
	for _, c := range []struct {
		syncEveryCommit bool
		want            string
		synchronous     int // PRAGMA synchronous: 1 NORMAL, 2 FULL
	}{
		{false, "synchronous(NORMAL)", 1},
		{true, "synchronous(FULL)", 2},
	} {
		u, err := url.Parse(sqliteURL("/data/mongo", c.syncEveryCommit))
		if err != nil {
			t.Fatal(err)
		}
		if u.Scheme != "file" || u.Path != "/data/mongo/" {
			t.Errorf("sqliteURL(%v) = %s, want file:/data/mongo/", c.syncEveryCommit, u)
		}
		if got, want := u.Query()["_pragma"], []string{c.want, "temp_store(memory)"}; !slices.Equal(got, want) {
			t.Errorf("sqliteURL(%v) pragmas = %v, want %v", c.syncEveryCommit, got, want)
		}

		// FerretDB opens one file per database under the directory.
		u, err = url.Parse(sqliteURL(t.TempDir(), c.syncEveryCommit))
		if err != nil {
			t.Fatal(err)
		}
		u.Path = filepath.Join(u.Path, "db.sqlite")
		db, err := sql.Open("sqlite", u.String())
		if err != nil {
			t.Fatal(err)
		}
		var sync, temp int
		if err := db.QueryRowContext(t.Context(), "PRAGMA synchronous").Scan(&sync); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(t.Context(), "PRAGMA temp_store").Scan(&temp); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if sync != c.synchronous || temp != 2 {
			t.Errorf("sqliteURL(%v): synchronous %d, temp_store %d; want %d and 2 (memory)", c.syncEveryCommit, sync, temp, c.synchronous)
		}
	}
}
