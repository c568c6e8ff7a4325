package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Postgres is a throwaway PostgreSQL server for the tests of one test
// binary: started on first use, listening only on a Unix socket in its own
// temporary directory (no TCP port), with fsync on, and stopped by Stop
// (call it from TestMain). Each test gets a fresh database from DB.
//
//	var pg testenv.Postgres
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		pg.Stop()
//		os.Exit(code)
//	}
type Postgres struct {
	once sync.Once
	err  error
	dir  string // data directory and socket directory live here
	cmd  *exec.Cmd
	done chan struct{}
	// stock holds databases made ahead of the tests that will use them
	// (CREATE DATABASE copies a template and takes a while), filled by
	// makeDBs until quit closes.
	stock chan dbOrErr
	quit  chan struct{}
	made  chan struct{} // closed when makeDBs returns

	stopOnce sync.Once
	frozen   atomic.Bool // stopped by Freeze

	// primary, for a standby made by Standby: the server it replicates.
	primary *Postgres
	cred    *syscall.Credential // the server's user; nil: ours
}

type dbOrErr struct {
	name string
	err  error
}

// makeDBs keeps fresh databases ready, made by two workers.
func (p *Postgres) makeDBs() {
	defer close(p.made)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-p.quit; cancel() }()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 2 {
		wg.Go(func() { p.makeDBsWorker(ctx, &next) })
	}
	wg.Wait()
}

func (p *Postgres) makeDBsWorker(ctx context.Context, next *atomic.Int64) {
	for {
		name := fmt.Sprintf("test%d", next.Add(1))
		out, err := p.psql(ctx, "postgres", "CREATE DATABASE "+name)
		if err != nil {
			err = fmt.Errorf("CREATE DATABASE: %v\n%s", err, out)
		}
		for {
			select {
			case p.stock <- dbOrErr{name, err}:
			case <-p.quit:
				return
			}
			if err == nil {
				break
			}
			// Broken: every test that asks is told so.
		}
	}
}

// postgresBinDir finds the directory of initdb and postgres: $POSTIE_PG_BINDIR,
// else the newest /usr/lib/postgresql/*/bin that has postgres.
func postgresBinDir() (string, error) {
	if d := os.Getenv("POSTIE_PG_BINDIR"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "postgres")); err == nil {
			return dirs[i], nil
		}
	}
	return "", errors.New("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin (./test.sh installs postgresql)")
}

// errMissing marks a start failure that is a missing peer rather than a
// broken one.
type errMissing struct{ error }

func (p *Postgres) start() error {
	bin, err := postgresBinDir()
	if err != nil {
		return errMissing{err}
	}
	var cred *syscall.Credential
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		// The server refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			return errMissing{fmt.Errorf("running as root and no postgres user: %v", err)}
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir, err := os.MkdirTemp("", "postie-pg-")
	if err != nil {
		return err
	}
	p.dir = dir
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			return err
		}
	}
	p.cred = cred
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-instructions", "-E", "UTF8", "--locale=C", "--no-sync")
	if p.primary != nil {
		// A copy of the primary that follows it (-R: standby.signal
		// and primary_conninfo), through the primary's socket
		// (initdb --auth=trust lets local replication in).
		initdb = exec.Command(filepath.Join(bin, "pg_basebackup"), "-h", p.primary.dir, "-U", "postgres", "-D", data, "-R", "-X", "stream", "--checkpoint=fast")
	}
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", filepath.Base(initdb.Path), err, out)
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-c", "listen_addresses=",
		"-c", "unix_socket_directories="+dir,
		"-c", "fsync=on",
		"-c", "max_connections=200",
		"-c", "shared_buffers=32MB",
		"-c", "logging_collector=off")
	cmd.Dir = dir
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	// The server goes down with the test binary even if Stop is never
	// reached (a panic, a killed test).
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("postgres: %v", err)
	}
	p.cmd = cmd
	p.done = make(chan struct{})
	go func() { cmd.Wait(); close(p.done) }()
	sock := filepath.Join(dir, ".s.PGSQL.5432")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			// The socket appears before the server accepts logins.
			if out, err := exec.Command(filepath.Join(bin, "pg_isready"), "-h", dir, "-U", "postgres", "-d", "postgres").CombinedOutput(); err == nil {
				break
			} else if time.Now().After(deadline) {
				return fmt.Errorf("postgres not ready: %s", out)
			}
		}
		select {
		case <-p.done:
			log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			return fmt.Errorf("postgres exited at start:\n%s", log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("postgres did not start within 30s")
		}
	}
	if p.primary != nil {
		return nil // read-only: no databases to make
	}
	p.stock = make(chan dbOrErr, 2)
	p.quit = make(chan struct{})
	p.made = make(chan struct{})
	go p.makeDBs()
	return nil
}

// Standby starts a hot standby of p (streaming replication from a
// pg_basebackup of p, taken now: the databases p made so far are in it),
// on a socket of its own, stopped when the test ends. DB does not work
// on it; Promote makes it a primary.
func (p *Postgres) Standby(t testing.TB) *Postgres {
	t.Helper()
	p.SocketDir(t)
	s := &Postgres{primary: p}
	s.once.Do(func() { s.err = s.start() })
	t.Cleanup(s.Stop)
	if s.err != nil {
		t.Fatalf("starting a standby: %v", s.err)
	}
	return s
}

// Promote makes a standby a primary (pg_ctl promote, waiting until it
// accepts writes).
func (p *Postgres) Promote(t testing.TB) {
	t.Helper()
	bin, err := postgresBinDir()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "pg_ctl"), "promote", "-w", "-t", "60", "-D", filepath.Join(p.dir, "data"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl promote: %v\n%s", err, out)
	}
}

// SocketDir is the directory of the server's Unix socket (the host of a
// DSN), starting the server if needed; "" when it could not start.
func (p *Postgres) SocketDir(t testing.TB) string {
	t.Helper()
	p.once.Do(func() { p.err = p.start() })
	if p.err != nil {
		var m errMissing
		if errors.As(p.err, &m) {
			Missing(t, "%v", m.error)
		}
		t.Fatalf("starting PostgreSQL: %v", p.err)
	}
	return p.dir
}

// DSN returns the connection string of database db as the superuser.
func (p *Postgres) DSN(t testing.TB, db string) string {
	return fmt.Sprintf("host=%s port=5432 user=postgres dbname=%s sslmode=disable", p.SocketDir(t), db)
}

// DB creates a fresh, empty database for the test and returns its DSN
// (key=value form: host is the socket directory, user postgres, trust
// authentication). Missing server binaries skip the test, or fail it under
// CI.
func (p *Postgres) DB(t testing.TB) string {
	t.Helper()
	p.SocketDir(t)
	var d dbOrErr
	select {
	case d = <-p.stock:
	case <-time.After(2 * time.Minute):
		t.Fatal("no fresh database within 2 minutes")
	}
	if d.err != nil {
		t.Fatal(d.err)
	}
	t.Logf("database %s", d.name)
	return p.DSN(t, d.name)
}

// Exec runs SQL statements through psql as the superuser in database
// postgres, failing the test on error.
func (p *Postgres) Exec(t testing.TB, sql string) {
	t.Helper()
	out, err := p.psql(context.Background(), "postgres", sql)
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", sql, err, out)
	}
}

// ExecIn runs SQL statements through psql as the superuser in the database
// of dsn (one DB returned), failing the test on error; it returns psql's
// output.
func (p *Postgres) ExecIn(t testing.TB, dsn, sql string) string {
	t.Helper()
	db := ""
	for _, kv := range strings.Fields(dsn) {
		if v, ok := strings.CutPrefix(kv, "dbname="); ok {
			db = v
		}
	}
	if db == "" {
		t.Fatalf("ExecIn: no dbname in %q", dsn)
	}
	out, err := p.psql(context.Background(), db, sql)
	if err != nil {
		t.Fatalf("psql %q in %s: %v\n%s", sql, db, err, out)
	}
	return string(out)
}

func (p *Postgres) psql(ctx context.Context, db, sql string) ([]byte, error) {
	bin, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	psql := filepath.Join(bin, "psql")
	if _, err := os.Stat(psql); err != nil {
		psql = "psql"
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return exec.CommandContext(ctx, psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", p.dir, "-U", "postgres", "-d", db, "-c", sql).CombinedOutput()
}

// Stop shuts the server down (fast shutdown, then SIGKILL after 10 s) and
// removes its directory. It does nothing when the server never started,
// or the second time.
func (p *Postgres) Stop() { p.stopOnce.Do(p.stop) }

func (p *Postgres) stop() {
	p.thaw()
	if p.quit != nil {
		close(p.quit)
		<-p.made
	}
	if p.cmd != nil && p.cmd.Process != nil {
		stopProcess(p.cmd.Process, syscall.SIGINT, p.done)
	}
	if p.dir != "" {
		os.RemoveAll(p.dir)
	}
}
