package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"supportbot/backoff"
)

// PostgreSQL, for several replicas on one database: the same Store, the same SQL
// (written to run on both engines), its own migrations. What SQLite gets from one
// process — one writer, in-process locks — PostgreSQL gets from its own guarantees:
// every Update is a SERIALIZABLE transaction, retried when PostgreSQL reports that a
// concurrent one conflicted, so the limit of active dialogs, the numbering, the
// de-duplication of events and the fetch offset hold across replicas; advisory locks
// make one replica the sender and poller of each portal (see Claim) and the runner
// of each scheduled job; NOTIFY wakes the replicas' dispatchers when work is queued.

//go:embed migrations/postgres/*.sql
var pgMigrationFiles embed.FS

// IsPostgres reports whether a database location is a PostgreSQL URL rather than a
// SQLite file path.
func IsPostgres(location string) bool {
	return strings.HasPrefix(location, "postgres://") || strings.HasPrefix(location, "postgresql://")
}

// outboxChannel is the NOTIFY channel of commits that queued outbox entries.
const outboxChannel = "supportbot_outbox"

// pgRetries bounds how often a transaction that lost a conflict is run again; with
// the backoff below that is a few seconds at most, under the heaviest contention.
const pgRetries = 50

// uniqueRetries bounds the tries of a transaction that breaks a unique key. A key a
// concurrent transaction took first is seen at the next try, which then goes another
// way (the next dialog number); only a burst of such transactions needs a few. A key
// taken again and again is taken for good: 50 tries would make the caller wait
// seconds for the same error (SQLite, one writer, reports it at once).
const uniqueRetries = 5

func openPostgres(ctx context.Context, url string, opts ...Option) (*Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database: %w", pgErrorText(err))
	}
	if err := migratePostgres(ctx, db, -1); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	// Advisory locks are the server's, not the schema's: the claims are named after
	// the schema too, so that deployments sharing a server never block each other.
	var where string
	if err := db.QueryRowContext(ctx, `SELECT current_database() || '.' || current_schema()`).Scan(&where); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database: %w", pgErrorText(err))
	}
	s := &Store{
		pg:      true,
		claimNS: int32(JobKey(where)),
		url:     url,
		write:   db,
		read:    db,
		clock:   time.Now,
		portals: map[int64]Portal{},
		outbox:  make(chan struct{}, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
		claims:  map[[2]int32]bool{},
	}
	for _, o := range opts {
		o(s)
	}
	go s.listen()
	return s, nil
}

// pgErrorText keeps the server's words and drops the connection string pgx quotes,
// which may hold a password.
func pgErrorText(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s (SQLSTATE %s)", pe.Message, pe.Code)
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return errors.New("cannot connect to the PostgreSQL server")
	}
	return err
}

// migratePostgres applies the PostgreSQL migrations not yet applied, under an
// advisory lock, so that replicas starting together do not run them twice. upTo
// stops after that many (for tests that build an old database); -1 applies them all.
func migratePostgres(ctx context.Context, db *sql.DB, upTo int) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	const lock = `SELECT pg_advisory_lock(7236417, 0)`
	if _, err := conn.ExecContext(ctx, lock); err != nil {
		return fmt.Errorf("migration lock: %w", pgErrorText(err))
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(7236417, 0)`)
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("schema version: %w", pgErrorText(err))
	}
	var version int
	err = conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&version)
	if err != nil {
		return fmt.Errorf("read schema version: %w", pgErrorText(err))
	}
	names, err := fs.Glob(pgMigrationFiles, "migrations/postgres/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	if upTo >= 0 && upTo < len(names) {
		names = names[:upTo]
	}
	if version > len(names) {
		return fmt.Errorf("database schema version %d is newer than this binary knows (%d): refusing to run an old binary on it", version, len(names))
	}
	for i := version; i < len(names); i++ {
		body, err := pgMigrationFiles.ReadFile(names[i])
		if err != nil {
			return err
		}
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migration %s: %w", names[i], pgErrorText(err))
		}
		_, err = tx.ExecContext(ctx, string(body))
		if err == nil {
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, i+1)
		}
		if err == nil {
			err = tx.Commit()
		} else {
			tx.Rollback()
		}
		if err != nil {
			return fmt.Errorf("migration %s: %w", names[i], pgErrorText(err))
		}
	}
	return nil
}

// updatePostgres runs fn in a SERIALIZABLE transaction of its own, again when it
// lost a conflict with a concurrent one (a bounded number of times, with jitter).
func (s *Store) updatePostgres(ctx context.Context, fn func(*Tx) error) error {
	select {
	case <-s.stop:
		return ErrClosed
	default:
	}
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		enqueued, err := s.runPostgres(ctx, fn)
		if err == nil {
			s.signalOutbox(enqueued)
			return nil
		}
		if !retryable(err) || attempt >= pgRetries || attempt >= uniqueRetries && uniqueViolation(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond + rand.N(backoff.Wait(time.Millisecond, 100*time.Millisecond, attempt))):
		}
	}
}

func (s *Store) runPostgres(ctx context.Context, fn func(*Tx) error) (bool, error) {
	// Once begun, the transaction is not cut short by the caller's context: the
	// caller must learn whether its work was committed.
	sqlTx, err := s.write.BeginTx(context.WithoutCancel(ctx), &sql.TxOptions{Isolation: sql.LevelSerializable})
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	tx := &Tx{tx: sqlTx, pg: true, portals: map[int64]Portal{}, now: s.clock()}
	if err := runFn(tx, fn); err != nil {
		sqlTx.Rollback()
		return false, err
	}
	if tx.enqueued {
		// Delivered to the listeners at commit, and only if it commits.
		if _, err := sqlTx.Exec(`SELECT pg_notify('` + outboxChannel + `', '')`); err != nil {
			sqlTx.Rollback()
			return false, err
		}
	}
	if err := sqlTx.Commit(); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return tx.enqueued, nil
}

// retryable: PostgreSQL aborted the transaction because of a concurrent one
// (serialization failure, deadlock, or a unique key the other one took first).
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01" || pe.Code == "23505")
}

func uniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// Transient reports an error of the database, not of the work: the server shutting
// down or restarting (57P01 admin_shutdown, 57P02, 57P03), a lost or refused
// connection (class 08, ECONNREFUSED, ECONNRESET, EOF), or a serialization failure or
// deadlock (40001, 40P01) lost more times than Update tries again. The same work may be tried
// again once the database is back; it must not be given up as bad. SQLite,
// in-process, has none.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03" || strings.HasPrefix(pe.Code, "08") ||
			pe.Code == "40001" || pe.Code == "40P01" // not 23505: a key taken for good stays taken
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.As(err, &ne) || pgconn.SafeToRetry(err) || strings.Contains(err.Error(), "conn closed")
}

// listen turns NOTIFY into the outbox signal, so a replica's dispatcher wakes when
// any replica queues work. A lost connection is opened again; meanwhile the
// dispatcher still polls.
func (s *Store) listen() {
	defer close(s.stopped)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-s.stop; cancel() }()
	for ctx.Err() == nil {
		conn, err := pgx.Connect(ctx, s.url)
		if err == nil {
			_, err = conn.Exec(ctx, "LISTEN "+outboxChannel)
			for err == nil {
				if _, err = conn.WaitForNotification(ctx); err == nil {
					s.signalOutbox(true)
				}
			}
			conn.Close(context.Background())
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// rebind writes SQLite's placeholders as PostgreSQL's, once per statement: "?" as
// "$1", "$2"… in order, and a numbered "?3" as "$3". The statements hold no "?"
// inside string literals.
func rebind(q string) string {
	if v, ok := rebound.Load(q); ok {
		return v.(string)
	}
	var b strings.Builder
	n, quoted := 0, false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'':
			quoted = !quoted
		case c == '?' && !quoted && i+1 < len(q) && q[i+1] >= '0' && q[i+1] <= '9':
			b.WriteByte('$') // numbered: the digits follow as they are
			continue
		case c == '?' && !quoted:
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	rebound.Store(q, b.String())
	return b.String()
}

var rebound sync.Map

// Claim makes this process the one that works for key (a portal's sending and
// polling, a scheduled job) among the replicas sharing the database, and reports
// whether it is. A claim lasts while the process lives: PostgreSQL releases a dead
// replica's advisory locks with its connection, and another replica's next Claim
// takes over. On SQLite, a single process, every claim holds.
func (s *Store) Claim(ctx context.Context, kind ClaimKind, id int64) bool {
	if !s.pg {
		return true
	}
	key := s.claimKey(kind, id)
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	if s.claims[key] {
		// Held already, if the session holding it is still alive: asked at most once
		// a second, however many portals are claimed.
		if time.Since(s.claimsChecked) < time.Second {
			return true
		}
		if s.claimConn != nil && s.claimSessionAliveLocked(ctx) {
			return true
		}
		s.dropClaimsLocked()
	}
	if s.claimConn == nil {
		conn, err := s.write.Conn(ctx)
		if err != nil {
			return false
		}
		s.claimConn = conn
	}
	var got bool
	if err := s.claimConn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, $2)`, key[0], key[1]).Scan(&got); err != nil {
		s.dropClaimsLocked()
		return false
	}
	if got {
		s.claims[key] = true
	}
	return got
}

// Holding reports whether this process holds the claim at this very moment: the
// session that took the advisory lock answers now. It never takes a claim. A
// sender asks before each request, so that it stops the moment its session is gone
// (terminated, or the server restarted), before another replica — which may take
// the lock at once — starts sending too. On SQLite every claim holds.
func (s *Store) Holding(ctx context.Context, kind ClaimKind, id int64) bool {
	if !s.pg {
		return true
	}
	key := s.claimKey(kind, id)
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	if !s.claims[key] || s.claimConn == nil {
		return false
	}
	if !s.claimSessionAliveLocked(ctx) {
		s.dropClaimsLocked()
		return false
	}
	return true
}

// claimSessionAliveLocked asks the session holding the claims for an answer, within
// a few seconds. A sql.Conn stays on one session: if it answers, the locks it took
// are still held.
func (s *Store) claimSessionAliveLocked(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, claimCheckTimeout)
	defer cancel()
	if s.claimConn.PingContext(ctx) != nil {
		return false
	}
	s.claimsChecked = time.Now()
	return true
}

// claimCheckTimeout bounds the wait for the claims' session to answer.
const claimCheckTimeout = 3 * time.Second

// ClaimSessionPID is the server process of the session holding this process's
// claims (0: none), as pg_stat_activity shows it: for an operator, and for the
// tests that terminate it.
func (s *Store) ClaimSessionPID(ctx context.Context) (int, error) {
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	if s.claimConn == nil {
		return 0, nil
	}
	var pid int
	err := s.claimConn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid)
	return pid, err
}

func (s *Store) dropClaimsLocked() {
	if s.claimConn != nil {
		if len(s.claims) > 0 {
			s.claimConn.ExecContext(context.Background(), `SELECT pg_advisory_unlock_all()`)
		}
		// Discarded rather than pooled: whatever it may still hold goes with it.
		s.claimConn.Raw(func(any) error { return driver.ErrBadConn })
		s.claimConn.Close()
		s.claimConn = nil
	}
	clear(s.claims)
}

// claimKey is the advisory lock of a claim: the schema's and the kind's name, and the ID.
func (s *Store) claimKey(kind ClaimKind, id int64) [2]int32 {
	return [2]int32{s.claimNS ^ int32(kind)*0x01000193, int32(id)}
}

// ClaimKind says what a claim is for.
type ClaimKind int32

// What replicas claim.
const (
	ClaimPortal ClaimKind = 1 // sending to a portal and polling its events
	ClaimJob    ClaimKind = 2 // a scheduled job, by JobKey
)

// JobKey is a job's claim ID, from its name.
func JobKey(name string) int64 {
	var h uint32 = 2166136261
	for i := 0; i < len(name); i++ {
		h = (h ^ uint32(name[i])) * 16777619
	}
	return int64(int32(h))
}
