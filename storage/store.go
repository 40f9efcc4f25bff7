// Package storage keeps supportbot's state: portals, dialogs, their transcripts and
// last-seen marks, processed event keys and the outbox of calls to make. One
// concrete Store with a method per query, plain SQL that runs on both engines: an
// embedded SQLite file (the default) or PostgreSQL, for several replicas (see
// postgres.go).
package storage

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// ErrClosed is returned by Update after Close.
var ErrClosed = errors.New("storage closed")

// ErrNotFound is returned by lookups that find no row.
var ErrNotFound = errors.New("not found")

// Store is the database. Writes go through one connection and one goroutine that
// groups concurrent transactions into a single commit (see Update); reads use a
// separate pool, which WAL lets run beside the writer.
type Store struct {
	write *sql.DB
	read  *sql.DB
	clock func() time.Time
	pg    bool   // PostgreSQL: no writer goroutine; every Update its own transaction
	url   string // PostgreSQL: where to LISTEN

	claimMu       sync.Mutex
	claimConn     *sql.Conn         // PostgreSQL: the session holding this process's advisory locks
	claims        map[[2]int32]bool // held
	claimsChecked time.Time         // when claimConn last answered
	claimNS       int32             // the schema's part of every claim's lock

	stmts    map[string]*sql.Stmt // prepared on the writer connection; used only by the writer goroutine
	portals  map[int64]Portal     // read on every event; cached by the writer goroutine
	roles    map[[2]int64]Roles   // likewise, on SQLite (one process: nobody else changes them)
	requests chan *writeRequest
	outbox   chan struct{}
	stop     chan struct{}
	stopped  chan struct{}
	closeMu  sync.Once
}

// Option configures Open.
type Option func(*Store)

// WithClock replaces time.Now, for tests that need to control time.
func WithClock(clock func() time.Time) Option { return func(s *Store) { s.clock = clock } }

// SetMaxPages caps the open database at n pages (PRAGMA max_page_count; 0 lifts
// it): a quota on its size, past which writes fail as on a full disk. Tests use it
// to fill the disk.
func (s *Store) SetMaxPages(ctx context.Context, n int) error {
	if s.pg {
		return errors.New("max pages: a SQLite setting")
	}
	if n <= 0 {
		n = math.MaxInt32
	}
	// PRAGMA takes no bind parameters; n is an integer.
	_, err := s.write.ExecContext(ctx, "PRAGMA max_page_count = "+strconv.Itoa(n))
	return err
}

// maxGroup bounds how many transactions share one commit, so one slow batch cannot
// hold many callers for long.
const maxGroup = 128

// Open opens the database at path — a SQLite file, created if needed, or a
// postgres:// URL — and applies migrations.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	if IsPostgres(path) {
		return openPostgres(ctx, path, opts...)
	}
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open database: invalid path %q", path)
	}
	// Pragmas go in the DSN so every connection the pool opens gets them.
	// synchronous=FULL: an event answered 200 survives a power cut, not only a crash;
	// group commit keeps that affordable.
	pragmas := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(ON)"} {
		pragmas.Add("_pragma", p)
	}
	// The writer checkpoints itself (SQLite's default, every 1000 pages): a
	// checkpointer beside it never catches up under steady load, and the WAL then
	// grows without bound (1.3 GiB in 20 s of the intake benchmark).
	writeDSN := path + "?" + pragmas.Encode() + "&_txlock=immediate"
	pragmas.Add("_pragma", "query_only(ON)")
	readDSN := path + "?" + pragmas.Encode()

	w, err := sql.Open("sqlite", writeDSN)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := migrate(ctx, w, -1); err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", readDSN)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)

	s := &Store{
		write:    w,
		read:     r,
		clock:    time.Now,
		stmts:    map[string]*sql.Stmt{},
		portals:  map[int64]Portal{},
		roles:    map[[2]int64]Roles{},
		requests: make(chan *writeRequest),
		outbox:   make(chan struct{}, 1),
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	go s.writer()
	return s, nil
}

// Close stops the writer after the transactions already handed to it and closes the
// database.
func (s *Store) Close() error {
	var err error
	s.closeMu.Do(func() {
		close(s.stop)
		<-s.stopped
		if s.pg {
			s.claimMu.Lock()
			s.dropClaimsLocked() // the locks go with their session
			s.claimMu.Unlock()
			err = s.write.Close()
			return
		}
		for _, st := range s.stmts {
			st.Close()
		}
		// Leave a small file behind: everything back in the database, the WAL empty.
		_, cpErr := s.write.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
		err = errors.Join(cpErr, s.read.Close(), s.write.Close())
	})
	return err
}

// Ping checks that the database answers a query and can commit a write (readiness):
// a full disk fails every event while reads still work, so only a write tells.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.readRow(ctx, "SELECT 1 FROM portals LIMIT 1").Scan(&one); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("ping database: %w", err)
	}
	err := s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.exec(`INSERT INTO health (id, checked_at, pad) VALUES (2, ?, ?)`, millis(tx.now), make([]byte, 16384)); err != nil {
			return err
		}
		if _, err := tx.exec(`DELETE FROM health WHERE id = 2`); err != nil {
			return err
		}
		_, err := tx.exec(`INSERT INTO health (id, checked_at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at`,
			millis(tx.now))
		return err
	})
	if err != nil {
		return fmt.Errorf("database cannot commit: %w", err)
	}
	return s.pingClaims(ctx)
}

// pingClaims: a replica whose claims' session is gone (terminated, or the server
// restarted) sends to none of its portals, whatever its pool says, until it claims
// them again on a new session.
func (s *Store) pingClaims(ctx context.Context) error {
	if !s.pg {
		return nil
	}
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	if len(s.claims) == 0 || s.claimConn == nil || s.claimSessionAliveLocked(ctx) {
		return nil
	}
	s.dropClaimsLocked()
	return errors.New("ping database: the session holding this replica's claims is gone; claiming again")
}

// Back returns nil when the database answers now, or else a channel closed as soon
// as it answers again (asked every 100 ms until ctx ends). A loop that failed
// because the database was away waits on it as well as on its backoff, so that it
// is back at work on the first answer, not a long backoff after.
func (s *Store) Back(ctx context.Context) <-chan struct{} {
	if s.answers(ctx) {
		return nil
	}
	back := make(chan struct{})
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if s.answers(ctx) {
					close(back)
					return
				}
			}
		}
	}()
	return back
}

// answers: the database runs a query within a second.
func (s *Store) answers(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var one int
	return s.readRow(ctx, "SELECT 1").Scan(&one) == nil
}

// OutboxSignal receives a value after a commit that added outbox entries, so the
// dispatcher need not poll to notice new work.
func (s *Store) OutboxSignal() <-chan struct{} { return s.outbox }

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.clock() }

// Tx is one transaction's view of the store. It is only valid inside the function
// given to Update.
type Tx struct {
	tx         *sql.Tx
	pg         bool                 // PostgreSQL: statements rebound, not prepared by us
	stmts      map[string]*sql.Stmt // the writer's prepared statements
	unprepared map[string]bool      // statements to prepare after the commit
	portals    map[int64]Portal     // the writer's cache of portals
	now        time.Time
	enqueued   bool
	roles      map[[2]int64]Roles // RolesOf's answers: the writer's cache, or this transaction's
}

// Now is the time the transaction runs at; every row it writes carries it.
func (tx *Tx) Now() time.Time { return tx.now }

// exec, query and queryRow run a statement in the transaction, without a caller's
// context (see runInSavepoint). Statements are prepared once on the writer's single
// connection and reused: parsing SQL was the largest cost of an event.
func (tx *Tx) exec(q string, args ...any) (sql.Result, error) {
	args = texts(args)
	if tx.pg { // pgx prepares and caches statements itself
		return tx.tx.ExecContext(context.Background(), rebind(q), args...)
	}
	st, err := tx.stmt(q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(context.Background(), args...)
}

func (tx *Tx) query(q string, args ...any) (*sql.Rows, error) {
	args = texts(args)
	if tx.pg {
		return tx.tx.QueryContext(context.Background(), rebind(q), args...)
	}
	st, err := tx.stmt(q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(context.Background(), args...)
}

func (tx *Tx) queryRow(q string, args ...any) *sql.Row {
	args = texts(args)
	if tx.pg {
		return tx.tx.QueryRowContext(context.Background(), rebind(q), args...)
	}
	st, err := tx.stmt(q)
	if err != nil {
		// A Row carrying the error: prepare failures show up at Scan, as usual.
		return tx.tx.QueryRowContext(context.Background(), q, args...)
	}
	return st.QueryRowContext(context.Background(), args...)
}

func (tx *Tx) stmt(q string) (*sql.Stmt, error) {
	if st, ok := tx.stmts[q]; ok {
		return tx.tx.StmtContext(context.Background(), st), nil
	}
	// The writer's only connection is busy with this transaction, so the statement
	// is prepared for this transaction now and for good once it has committed.
	tx.unprepared[q] = true
	return tx.tx.PrepareContext(context.Background(), q)
}

// View runs fn in a read-only transaction on the read pool: one consistent snapshot
// that never waits for the writer. Anything fn tries to write fails.
func (s *Store) View(ctx context.Context, fn func(*Tx) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if s.pg {
		opts.Isolation = sql.LevelRepeatableRead // one snapshot, as SQLite's read transaction
	}
	sqlTx, err := s.read.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer sqlTx.Rollback()
	return runFn(&Tx{tx: sqlTx, pg: s.pg, stmts: map[string]*sql.Stmt{}, unprepared: map[string]bool{}, portals: map[int64]Portal{},
		now: s.clock()}, fn)
}

type writeRequest struct {
	ctx  context.Context
	fn   func(*Tx) error
	done chan error
}

// Update runs fn in a write transaction and returns once it is committed (nil) or
// rolled back (fn's error, or the commit's). Concurrent calls are grouped into one
// transaction and one commit (see commitGroup); a failing fn still undoes only its own
// work. fn may run more than once, so it must touch nothing but tx, and must not keep
// tx after returning.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	if s.pg {
		return s.updatePostgres(ctx, fn)
	}
	req := &writeRequest{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case s.requests <- req:
	case <-s.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once handed over, wait for the outcome even if ctx ends: the caller must learn
	// whether its work was committed.
	return <-req.done
}

func (s *Store) writer() {
	defer close(s.stopped)
	for {
		var first *writeRequest
		select {
		case first = <-s.requests:
		case <-s.stop:
			return
		}
		group := []*writeRequest{first}
	gather:
		for len(group) < maxGroup {
			select {
			case r := <-s.requests:
				group = append(group, r)
			default:
				break gather
			}
		}
		s.commitGroup(group)
	}
}

// commitGroup runs a group of transactions as one, optimistically: every fn in one
// SQLite transaction and one commit. Failures are rare (a database error, a bug), so
// instead of a savepoint around each fn — two more statements per event — a failure
// rolls the whole group back and the group is run again one fn per transaction, so
// that only the failing fn's work is lost.
func (s *Store) commitGroup(group []*writeRequest) {
	live := group[:0:0]
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.done <- err
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	if len(live) > 1 {
		if enqueued, err := s.runTx(live, nil); err == nil {
			for _, r := range live {
				r.done <- nil
			}
			s.signalOutbox(enqueued)
			return
		}
	}
	for _, r := range live {
		var fnErr error
		enqueued, err := s.runTx([]*writeRequest{r}, &fnErr)
		if fnErr != nil {
			err = fnErr
		}
		r.done <- err
		s.signalOutbox(enqueued)
	}
}

// runTx runs fns in one transaction and commits it. On any failure it rolls back and
// returns the error; fnErr, if not nil, receives a failing fn's own error.
func (s *Store) runTx(group []*writeRequest, fnErr *error) (enqueued bool, err error) {
	sqlTx, err := s.write.BeginTx(context.Background(), nil)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	unprepared := map[string]bool{}
	for _, r := range group {
		tx := &Tx{tx: sqlTx, stmts: s.stmts, unprepared: unprepared, portals: s.portals, roles: s.roles, now: s.clock()}
		if err := runFn(tx, r.fn); err != nil {
			sqlTx.Rollback()
			clear(s.portals) // the caches may hold what was just rolled back
			clear(s.roles)
			if fnErr != nil {
				*fnErr = err
			}
			return false, err
		}
		enqueued = enqueued || tx.enqueued
	}
	if err := sqlTx.Commit(); err != nil {
		clear(s.portals)
		clear(s.roles)
		return false, fmt.Errorf("commit: %w", err)
	}
	for q := range unprepared {
		if st, err := s.write.PrepareContext(context.Background(), q); err == nil {
			s.stmts[q] = st
		}
	}
	return enqueued, nil
}

func (s *Store) signalOutbox(enqueued bool) {
	if !enqueued {
		return
	}
	select {
	case s.outbox <- struct{}{}:
	default:
	}
}

// runFn runs fn, turning a panic into an error.
//
// Statements in the shared transaction never get the caller's context: SQLite answers
// an interrupted statement by rolling back the whole transaction, which would undo the
// other callers' work too. The context is checked before fn starts instead.
func runFn(tx *Tx, fn func(*Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in transaction: %v\n%s", p, debug.Stack())
		}
	}()
	return fn(tx)
}

// migrate applies the embedded migrations not yet applied, in file-name order, each
// in its own transaction, recording progress in PRAGMA user_version. upTo stops after
// that many (for tests that build an old database); -1 applies them all.
func migrate(ctx context.Context, db *sql.DB, upTo int) error {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	if upTo >= 0 && upTo < len(names) {
		names = names[:upTo]
	}
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(names) {
		return fmt.Errorf("database schema version %d is newer than this binary knows (%d): refusing to run an old binary on it", version, len(names))
	}
	for i := version; i < len(names); i++ {
		body, err := migrationFiles.ReadFile(names[i])
		if err != nil {
			return err
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migration %s: %w", names[i], err)
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", names[i], err)
		}
		// PRAGMA takes no bind parameters; the value is our own integer.
		if _, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(i+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", names[i], err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %s: %w", names[i], err)
		}
	}
	return nil
}

// insert runs an INSERT and returns the new row's id; inserted is false when it
// inserted nothing (ON CONFLICT DO NOTHING). SQLite reports the id with the result,
// which costs less than RETURNING there; PostgreSQL needs RETURNING.
func (tx *Tx) insert(q string, args ...any) (id int64, inserted bool, err error) {
	if tx.pg {
		err = tx.queryRow(q+" RETURNING id", args...).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, false, nil
		}
		return id, err == nil, err
	}
	res, err := tx.exec(q, args...)
	if err != nil {
		return 0, false, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return 0, false, nil
	}
	id, err = res.LastInsertId()
	return id, err == nil, err
}

// readRow and readRows query the read pool outside a transaction, in the engine's
// placeholders.
func (s *Store) readRow(ctx context.Context, q string, args ...any) *sql.Row {
	args = texts(args)
	if s.pg {
		q = rebind(q)
	}
	return s.read.QueryRowContext(ctx, q, args...)
}

func (s *Store) readRows(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	args = texts(args)
	if s.pg {
		q = rebind(q)
	}
	return s.read.QueryContext(ctx, q, args...)
}

// collect scans every row of a query (run with err) into a list.
func collect[T any](rows *sql.Rows, err error, scan func(*sql.Rows) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, v)
	}
	return list, rows.Err()
}

// millis and fromMillis convert times to the stored Unix milliseconds.
func millis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms sql.NullInt64) time.Time {
	if !ms.Valid || ms.Int64 == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms.Int64).UTC()
}

// texts makes every string parameter text both engines hold alike: PostgreSQL
// refuses a NUL byte or invalid UTF-8 in text (SQLSTATE 22021), which SQLite
// stores as given. Events are cleaned as they are decoded (bitrix24), but not
// what else reaches a row from outside: a portal's error description, a call's
// result. Refused there, an outcome could never be recorded, and its entry would
// be sent again and again. NULs are dropped, invalid bytes become U+FFFD; []byte
// parameters are binary columns and left alone. A lookup gets the same cleaning,
// so that it finds what was stored.
func texts(args []any) []any {
	cloned := false
	for i, a := range args {
		s, ok := a.(string)
		if !ok || strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
			continue
		}
		if !cloned { // the caller's slice is not ours to change
			args, cloned = slices.Clone(args), true
		}
		args[i] = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	}
	return args
}
