package embedded

import (
	"net/url"
	"slices"
	"testing"
)

// The durability setting reaches SQLite as a pragma on the URL FerretDB
// opens, next to nothing that would stop FerretDB adding its own.
func TestSQLiteURL(t *testing.T) {
	for _, c := range []struct {
		syncEveryCommit bool
		want            string
	}{
		{false, "synchronous(NORMAL)"},
		{true, "synchronous(FULL)"},
	} {
		u, err := url.Parse(sqliteURL("/data/mongo", c.syncEveryCommit))
		if err != nil {
			t.Fatal(err)
		}
		if u.Scheme != "file" || u.Path != "/data/mongo/" {
			t.Errorf("sqliteURL(%v) = %s, want file:/data/mongo/", c.syncEveryCommit, u)
		}
		if got := u.Query()["_pragma"]; !slices.Equal(got, []string{c.want}) {
			t.Errorf("sqliteURL(%v) pragmas = %v, want [%s]", c.syncEveryCommit, got, c.want)
		}
	}
}
