package store

import (
	"strings"
	"testing"
)

func TestRebind(t *testing.T) {
	if got := postgresDialect().rebind("a = ? AND b IN (?, ?)"); got != "a = $1 AND b IN ($2, $3)" {
		t.Fatalf("rebind = %q", got)
	}
	if got := sqliteDialect().rebind("a = ?"); got != "a = ?" {
		t.Fatalf("sqlite rebind = %q", got)
	}
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://drover:s3cret@db:5432/drover?sslmode=disable": "postgres://drover:xxxxx@db:5432/drover?sslmode=disable",
		"postgres://db/drover?password=s3cret":                    "postgres://db/drover?password=xxxxx",
		"sqlite:///var/lib/drover.db":                             "sqlite:///var/lib/drover.db",
		"/var/lib/drover.db":                                      "/var/lib/drover.db",
	} {
		if got := RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseDSN(t *testing.T) {
	for in, want := range map[string]string{
		"sqlite:///var/lib/d.db":  "file:/var/lib/d.db?_txlock=immediate",
		"sqlite:rel.db":           "file:rel.db?_txlock=immediate",
		"/tmp/x.db":               "file:/tmp/x.db?_txlock=immediate",
		"sqlite:///x.db?mode=ro":  "file:/x.db?mode=ro&_txlock=immediate",
		"postgres://h/db":         "postgres://h/db",
		"postgresql://u:p@h:1/db": "postgresql://u:p@h:1/db",
	} {
		_, got, err := parseDSN(in)
		if err != nil || !strings.HasPrefix(got, want) {
			t.Errorf("parseDSN(%q) = %q, %v; want prefix %q", in, got, err, want)
		}
	}
	if _, _, err := parseDSN(""); err == nil {
		t.Error("empty DSN accepted")
	}
}

func TestSplitSQL(t *testing.T) {
	got := splitSQL("-- c\nCREATE TABLE a (\n\tx INT\n);\nINSERT INTO a VALUES (1);\n")
	if len(got) != 2 || !strings.HasPrefix(got[0], "CREATE TABLE a") || got[1] != "INSERT INTO a VALUES (1)" {
		t.Fatalf("splitSQL = %q", got)
	}
}

func TestMigrationsLoad(t *testing.T) {
	for _, d := range []*dialect{sqliteDialect(), postgresDialect()} {
		ms, err := d.loadMigrations()
		if err != nil || len(ms) == 0 {
			t.Fatalf("%s migrations: %v", d.name, err)
		}
	}
}
