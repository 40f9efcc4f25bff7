package storage

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The code runs the same SQL on both engines, so it needs the same schema on both:
// the same tables, columns (in the same order: some queries read o.*), types,
// nullability, defaults, keys and indexes. Each engine's schema is built from its own
// migrations; these tests read both back from the engines' catalogues and compare
// them in one vocabulary.
//
// Types, by what they hold (SQLite by declared type, PostgreSQL by format_type):
//
//	integer  SQLite INTEGER  PostgreSQL bigint (64 bits, as SQLite's)
//	         SQLite INTEGER  PostgreSQL boolean: SQLite has no boolean type, a flag
//	                         is an INTEGER holding 0 or 1 there (TRUE is 1); the
//	                         SQL says TRUE, FALSE and NOT x, which mean the same on both
//	text     SQLite TEXT     PostgreSQL text
//	real     SQLite REAL     PostgreSQL double precision
//	blob     SQLite BLOB     PostgreSQL bytea
//
// Any other type keeps its engine's name, marked as having no common type
// (PostgreSQL's 32-bit integer among them), so it matches nothing and is reported. A generated id is SQLite's INTEGER PRIMARY KEY
// (an alias of the rowid) and PostgreSQL's identity (or serial) column. CHECK
// constraints are not compared: SQLite keeps them only as the text of CREATE TABLE.

// schemaView is one engine's schema as the comparison sees it.
type schemaView struct {
	// facts: table → what a fact is about ("column x", "index y", "primary key",
	// "unique (a, b)", "foreign key (a)") → what it says, in the common vocabulary.
	facts map[string]map[string]string
	// columns: table → its columns in order.
	columns map[string][]string
}

func newSchemaView() schemaView {
	return schemaView{facts: map[string]map[string]string{}, columns: map[string][]string{}}
}

func (v schemaView) add(table, about, says string) {
	if v.facts[table] == nil {
		v.facts[table] = map[string]string{}
	}
	v.facts[table][about] = says
}

func (v schemaView) addColumn(table, name, typ string, notNull bool, dflt string, generated bool) {
	v.columns[table] = append(v.columns[table], name)
	says := typ
	if notNull {
		says += " NOT NULL"
	} else {
		says += " NULL"
	}
	if dflt != "" {
		says += " DEFAULT " + dflt
	}
	if generated {
		says += " generated"
	}
	v.add(table, "column "+name, says)
}

// compareSchemas lists every difference between SQLite's schema and PostgreSQL's,
// one line each, in a stable order; none when they agree.
func compareSchemas(lite, pg schemaView) []string {
	var diffs []string
	tables := unionKeys(lite.facts, pg.facts)
	for _, t := range tables {
		l, p := lite.facts[t], pg.facts[t]
		switch {
		case p == nil:
			diffs = append(diffs, fmt.Sprintf("table %s: only on SQLite", t))
			continue
		case l == nil:
			diffs = append(diffs, fmt.Sprintf("table %s: only on PostgreSQL", t))
			continue
		}
		for _, about := range unionKeys(l, p) {
			a, onLite := l[about]
			b, onPG := p[about]
			switch {
			case !onPG:
				diffs = append(diffs, fmt.Sprintf("%s: %s: only on SQLite", t, about))
			case !onLite:
				diffs = append(diffs, fmt.Sprintf("%s: %s: only on PostgreSQL", t, about))
			case a != b:
				diffs = append(diffs, fmt.Sprintf("%s: %s: SQLite %s, PostgreSQL %s", t, about, a, b))
			}
		}
		// The order of the columns both have: a column only one has is reported above.
		lo := slices.DeleteFunc(slices.Clone(lite.columns[t]), func(c string) bool { return !slices.Contains(pg.columns[t], c) })
		po := slices.DeleteFunc(slices.Clone(pg.columns[t]), func(c string) bool { return !slices.Contains(lite.columns[t], c) })
		if !slices.Equal(lo, po) {
			diffs = append(diffs, fmt.Sprintf("%s: column order: SQLite (%s), PostgreSQL (%s)", t, strings.Join(lo, ", "), strings.Join(po, ", ")))
		}
	}
	return diffs
}

func unionKeys[V any](a, b map[string]V) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// queryer is a database or a transaction: the tests read a schema changed by a
// statement inside a transaction they then roll back.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// rowsOf runs a query and returns all its rows as strings (NULL as ""), read to the
// end before the next query: SQLite's connection serves one at a time.
func rowsOf(ctx context.Context, q queryer, query string, args ...any) ([][]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		dest := make([]any, len(cols))
		for i := range vals {
			dest[i] = &vals[i]
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("%s: %w", query, err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = v.String
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// readSQLiteSchema reads the schema of the SQLite database behind q.
func readSQLiteSchema(ctx context.Context, q queryer) (schemaView, error) {
	v := newSchemaView()
	tables, err := rowsOf(ctx, q, `SELECT name, wr FROM pragma_table_list
		WHERE schema = 'main' AND type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return v, err
	}
	for _, tr := range tables {
		table, withoutRowid := tr[0], tr[1] == "1"
		cols, err := rowsOf(ctx, q, `SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?) ORDER BY cid`, table)
		if err != nil {
			return v, err
		}
		// pk is a column's place in the primary key, from 1; 0 for the others.
		pk := make([]string, 0, len(cols))
		for place := 1; ; place++ {
			i := slices.IndexFunc(cols, func(c []string) bool { return c[4] == strconv.Itoa(place) })
			if i < 0 {
				break
			}
			pk = append(pk, cols[i][0])
		}
		if len(pk) > 0 {
			v.add(table, "primary key", "("+strings.Join(pk, ", ")+")")
		}
		for _, c := range cols {
			name, decl := c[0], strings.ToUpper(c[1])
			inPK := c[4] != "0"
			// An INTEGER PRIMARY KEY is the rowid: never NULL, and generated when
			// an insert leaves it out. Other key columns of a rowid table may be
			// NULL unless declared NOT NULL (an old SQLite quirk).
			rowid := inPK && len(pk) == 1 && decl == "INTEGER" && !withoutRowid
			notNull := c[2] == "1" || rowid || inPK && withoutRowid
			v.addColumn(table, name, sqliteType(decl), notNull, normalDefault(c[3]), rowid)
		}
		indexes, err := rowsOf(ctx, q, `SELECT l.name, l."unique", l.origin, COALESCE(s.sql, '')
			FROM pragma_index_list(?) l LEFT JOIN sqlite_schema s ON s.type = 'index' AND s.name = l.name`, table)
		if err != nil {
			return v, err
		}
		for _, ix := range indexes {
			name, unique, origin, def := ix[0], ix[1] == "1", ix[2], ix[3]
			keyCols, err := rowsOf(ctx, q, `SELECT COALESCE(name, '<expression>'), "desc" FROM pragma_index_xinfo(?) WHERE key ORDER BY seqno`, name)
			if err != nil {
				return v, err
			}
			var on []string
			for _, k := range keyCols {
				if k[1] == "1" {
					k[0] += " DESC"
				}
				on = append(on, k[0])
			}
			switch origin {
			case "pk": // the primary key, above
			case "u":
				v.add(table, "unique ("+strings.Join(on, ", ")+")", "")
			default:
				where := ""
				if i := strings.LastIndex(strings.ToUpper(def), " WHERE "); i >= 0 {
					where = def[i+len(" WHERE "):]
				}
				v.add(table, "index "+name, indexSays(on, unique, where))
			}
		}
		fks, err := rowsOf(ctx, q, `SELECT id, "table", "from", COALESCE("to", ''), on_delete, on_update
			FROM pragma_foreign_key_list(?) ORDER BY id, seq`, table)
		if err != nil {
			return v, err
		}
		type fk struct{ from, to []string }
		byID := map[string]*fk{}
		var order []string
		says := map[string]string{}
		for _, f := range fks {
			k := byID[f[0]]
			if k == nil {
				k = &fk{}
				byID[f[0]] = k
				order = append(order, f[0])
				says[f[0]] = f[1] + " ON DELETE " + f[4] + " ON UPDATE " + f[5]
			}
			k.from = append(k.from, f[2])
			k.to = append(k.to, f[3])
		}
		for _, id := range order {
			k := byID[id]
			ref, rest, _ := strings.Cut(says[id], " ")
			v.add(table, "foreign key ("+strings.Join(k.from, ", ")+")", ref+" ("+strings.Join(k.to, ", ")+") "+rest)
		}
	}
	return v, nil
}

// sqliteType names a SQLite declared type in the common vocabulary.
func sqliteType(decl string) string {
	switch decl {
	case "INTEGER", "BOOLEAN":
		return "integer"
	case "TEXT":
		return "text"
	case "REAL":
		return "real"
	case "BLOB":
		return "blob"
	}
	return decl + " (no common type)"
}

// postgresType names a PostgreSQL type in the common vocabulary.
func postgresType(t string) string {
	switch t {
	case "bigint", "boolean":
		return "integer"
	case "text":
		return "text"
	case "double precision":
		return "real"
	case "bytea":
		return "blob"
	}
	return t + " (no common type)"
}

func indexSays(on []string, unique bool, where string) string {
	says := "(" + strings.Join(on, ", ") + ")"
	if unique {
		says = "UNIQUE " + says
	}
	if where = normalExpr(where); where != "" {
		says += " WHERE " + where
	}
	return says
}

var (
	castRE    = regexp.MustCompile(`::[a-z][a-z ]*[a-z]`)
	numericRE = regexp.MustCompile(`^'(-?[0-9]+(\.[0-9]+)?)'$`)
	spaceRE   = regexp.MustCompile(`\s+`)
)

// normalExpr writes an expression as both engines would: PostgreSQL's casts of
// literals ('x'::text) and the parentheses around the whole dropped, identifiers
// unquoted, spaces collapsed.
func normalExpr(e string) string {
	e = castRE.ReplaceAllString(e, "")
	e = strings.ReplaceAll(e, `"`, "")
	e = strings.TrimSpace(spaceRE.ReplaceAllString(e, " "))
	for enclosed(e) {
		e = strings.TrimSpace(e[1 : len(e)-1])
	}
	return e
}

// enclosed reports whether the parentheses at the ends of e are one pair.
func enclosed(e string) bool {
	if len(e) < 2 || e[0] != '(' || e[len(e)-1] != ')' {
		return false
	}
	depth := 0
	for i, c := range e {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 && i < len(e)-1 {
				return false
			}
		}
	}
	return true
}

// normalDefault is a default in the common vocabulary: flags as 0 and 1, numbers
// bare, no default and DEFAULT NULL alike.
func normalDefault(d string) string {
	d = normalExpr(d)
	switch strings.ToLower(d) {
	case "", "null":
		return ""
	case "false":
		return "0"
	case "true":
		return "1"
	}
	if m := numericRE.FindStringSubmatch(d); m != nil {
		return m[1]
	}
	return d
}

// readPostgresSchema reads the schema PostgreSQL's current_schema() holds, but for
// schema_version, where PostgreSQL keeps what SQLite keeps in PRAGMA user_version.
func readPostgresSchema(ctx context.Context, q queryer) (schemaView, error) {
	v := newSchemaView()
	const inSchema = `n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname <> 'schema_version'`
	cols, err := rowsOf(ctx, q, `SELECT c.relname, a.attname, format_type(a.atttypid, NULL), a.attnotnull,
			COALESCE(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity <> ''
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE `+inSchema+` AND a.attnum > 0 AND NOT a.attisdropped ORDER BY c.relname, a.attnum`)
	if err != nil {
		return v, err
	}
	for _, c := range cols {
		dflt, generated := c[4], c[5] == "true"
		if strings.HasPrefix(dflt, "nextval(") { // serial
			dflt, generated = "", true
		}
		v.addColumn(c[0], c[1], postgresType(c[2]), c[3] == "true", normalDefault(dflt), generated)
	}
	// Key columns in key order; array_to_string because database/sql has no arrays.
	keys, err := rowsOf(ctx, q, `SELECT c.relname, k.contype,
			array_to_string(ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
				JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i), ', '),
			COALESCE(f.relname, ''),
			array_to_string(ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY u(n, i)
				JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i), ', '),
			k.confdeltype, k.confupdtype
		FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_class f ON f.oid = k.confrelid
		WHERE `+inSchema+` AND k.contype IN ('p', 'u', 'f')`)
	if err != nil {
		return v, err
	}
	actions := map[string]string{"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
	for _, k := range keys {
		switch k[1] {
		case "p":
			v.add(k[0], "primary key", "("+k[2]+")")
		case "u":
			v.add(k[0], "unique ("+k[2]+")", "")
		case "f":
			v.add(k[0], "foreign key ("+k[2]+")", k[3]+" ("+k[4]+") ON DELETE "+actions[k[5]]+" ON UPDATE "+actions[k[6]])
		}
	}
	// The indexes that back no key of their table (those are the keys above).
	indexes, err := rowsOf(ctx, q, `SELECT c.relname, i.relname, x.indisunique, COALESCE(pg_get_expr(x.indpred, x.indrelid), ''),
			array_to_string(ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true) ||
				CASE WHEN x.indoption[k - 1] & 1 = 1 THEN ' DESC' ELSE '' END
				FROM generate_series(1, x.indnatts) k ORDER BY k), chr(1))
		FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE `+inSchema+` AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid AND k.conrelid = x.indrelid)`)
	if err != nil {
		return v, err
	}
	for _, ix := range indexes {
		on := strings.Split(ix[4], "\x01")
		for i := range on {
			on[i] = normalExpr(on[i])
		}
		v.add(ix[0], "index "+ix[1], indexSays(on, ix[2] == "true", ix[3]))
	}
	return v, nil
}

// needPostgres is the PostgreSQL server of SUPPORTBOT_TEST_POSTGRES; without one
// the test is skipped, saying how to give one, or under CI=true fails.
func needPostgres(t *testing.T) string {
	t.Helper()
	base := os.Getenv("SUPPORTBOT_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("SUPPORTBOT_TEST_POSTGRES is not set: CI must run the PostgreSQL tests")
		}
		t.Skip("no PostgreSQL server: set SUPPORTBOT_TEST_POSTGRES=postgres://… to compare the engines' schemas (.ci/run starts one)")
	}
	return base
}

// builtSchemas builds each engine's schema from all its migrations: a SQLite file
// and a fresh schema on the PostgreSQL server.
func builtSchemas(t *testing.T) (lite, pg *sql.DB) {
	t.Helper()
	base := needPostgres(t)
	lite, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "schema.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })
	if err := migrate(t.Context(), lite, -1); err != nil {
		t.Fatal(err)
	}
	pg, err = sql.Open("pgx", testSchema(t, base))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	if err := migratePostgres(t.Context(), pg, -1); err != nil {
		t.Fatal(err)
	}
	return lite, pg
}

// TestSchemasAgree: SQLite's migrations and PostgreSQL's build the same schema.
func TestSchemasAgree(t *testing.T) {
	lite, pg := builtSchemas(t)
	l, err := readSQLiteSchema(t.Context(), lite)
	if err != nil {
		t.Fatal(err)
	}
	p, err := readPostgresSchema(t.Context(), pg)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range compareSchemas(l, p) {
		t.Error(d)
	}
}

// TestSchemaDifferencesReported: a change made to one engine's schema only is
// reported, as exactly that difference — a column dropped from either, a type, a
// nullability, a default, a generated id, each kind of key and index.
func TestSchemaDifferencesReported(t *testing.T) {
	lite, pg := builtSchemas(t)
	ctx := t.Context()
	l, err := readSQLiteSchema(ctx, lite)
	if err != nil {
		t.Fatal(err)
	}
	p, err := readPostgresSchema(ctx, pg)
	if err != nil {
		t.Fatal(err)
	}
	before := compareSchemas(l, p)
	cases := []struct {
		onPG      bool
		statement string
		want      string
	}{
		{false, `ALTER TABLE dialogs DROP COLUMN escalated_by`, "dialogs: column escalated_by: only on PostgreSQL"},
		{true, `ALTER TABLE outbox DROP COLUMN batch_limit`, "outbox: column batch_limit: only on SQLite"},
		{false, `ALTER TABLE portals ADD COLUMN note TEXT`, "portals: column note: only on SQLite"},
		{true, `CREATE TABLE notes (id BIGINT PRIMARY KEY)`, "table notes: only on PostgreSQL"},
		{true, `ALTER TABLE dialogs ALTER COLUMN number TYPE INTEGER`,
			"dialogs: column number: SQLite integer NOT NULL, PostgreSQL integer (no common type) NOT NULL"},
		{true, `ALTER TABLE service_times ALTER COLUMN seconds TYPE TEXT`,
			"service_times: column seconds: SQLite real NOT NULL, PostgreSQL text NOT NULL"},
		{true, `ALTER TABLE dialogs ALTER COLUMN title DROP NOT NULL`,
			"dialogs: column title: SQLite text NOT NULL, PostgreSQL text NULL"},
		{true, `ALTER TABLE portals ALTER COLUMN api SET DEFAULT 'v2'`,
			"portals: column api: SQLite text NOT NULL DEFAULT 'v1', PostgreSQL text NOT NULL DEFAULT 'v2'"},
		{true, `ALTER TABLE outbox ALTER COLUMN in_flight SET DEFAULT TRUE`,
			"outbox: column in_flight: SQLite integer NOT NULL DEFAULT 0, PostgreSQL integer NOT NULL DEFAULT 1"},
		{true, `ALTER TABLE dialogs ALTER COLUMN id DROP IDENTITY`,
			"dialogs: column id: SQLite integer NOT NULL generated, PostgreSQL integer NOT NULL"},
		{true, `ALTER TABLE ratings DROP CONSTRAINT ratings_pkey; ALTER TABLE ratings ADD PRIMARY KEY (resolved_at, dialog_id)`,
			"ratings: primary key: SQLite (dialog_id, resolved_at), PostgreSQL (resolved_at, dialog_id)"},
		{true, `ALTER TABLE dialogs DROP CONSTRAINT dialogs_portal_id_number_key`, "dialogs: unique (portal_id, number): only on SQLite"},
		{true, `ALTER TABLE last_seen DROP CONSTRAINT last_seen_dialog_id_fkey`, "last_seen: foreign key (dialog_id): only on SQLite"},
		{true, `ALTER TABLE last_seen DROP CONSTRAINT last_seen_dialog_id_fkey;
			ALTER TABLE last_seen ADD FOREIGN KEY (dialog_id) REFERENCES dialogs (id) ON DELETE CASCADE`,
			"last_seen: foreign key (dialog_id): SQLite dialogs (id) ON DELETE NO ACTION ON UPDATE NO ACTION, PostgreSQL dialogs (id) ON DELETE CASCADE ON UPDATE NO ACTION"},
		{false, `DROP INDEX roles_user`, "roles: index roles_user: only on PostgreSQL"},
		{true, `DROP INDEX roles_user; CREATE INDEX roles_user ON roles (user_id, portal_id)`,
			"roles: index roles_user: SQLite (portal_id, user_id), PostgreSQL (user_id, portal_id)"},
		{true, `DROP INDEX dialogs_by_chat; CREATE INDEX dialogs_by_chat ON dialogs (portal_id, chat_id) WHERE chat_id IS NOT NULL`,
			"dialogs: index dialogs_by_chat: SQLite UNIQUE (portal_id, chat_id) WHERE chat_id IS NOT NULL, PostgreSQL (portal_id, chat_id) WHERE chat_id IS NOT NULL"},
		{false, `DROP INDEX outbox_finished; CREATE INDEX outbox_finished ON outbox (done_at) WHERE state = 'failed'`,
			"outbox: index outbox_finished: SQLite (done_at) WHERE state = 'failed', PostgreSQL (done_at) WHERE state <> 'pending'"},
	}
	for _, c := range cases {
		db := lite
		if c.onPG {
			db = pg
		}
		// The statement and the reading in one transaction, rolled back: each case
		// starts from the schemas the migrations built.
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		changed := l
		if _, err = tx.ExecContext(ctx, c.statement); err == nil {
			if c.onPG {
				changed, err = readPostgresSchema(ctx, tx)
			} else {
				changed, err = readSQLiteSchema(ctx, tx)
			}
		}
		tx.Rollback()
		if err != nil {
			t.Fatalf("%s: %v", c.statement, err)
		}
		var got []string
		if c.onPG {
			got = compareSchemas(l, changed)
		} else {
			got = compareSchemas(changed, p)
		}
		// Whatever the migrations left different is TestSchemasAgree's to report.
		got = slices.DeleteFunc(got, func(d string) bool { return slices.Contains(before, d) })
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("after %s the comparison says\n%s\nwant\n%s", c.statement, strings.Join(got, "\n"), c.want)
		}
	}
}
