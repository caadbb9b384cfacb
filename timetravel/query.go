package timetravel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/rwsnap/rwsnap/internal/timeouts"
)

// ResetTimeout bounds SET QUERY_EPOCH = 0 after the query, which runs on a
// fresh context because the caller's may be cancelled (Ctrl-C).
var ResetTimeout = 5 * time.Second

// ConnConfig parses a postgres:// URL or key=value string ("" = the PG*
// environment variables). A cancelled context sends a CancelRequest instead
// of killing the socket, so the connection survives to reset QUERY_EPOCH.
func ConnConfig(connString string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		// pgx masks the password in the string it quotes.
		return nil, fmt.Errorf("parse pgwire connection string: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		// connect_timeout / PGCONNECT_TIMEOUT win; without them a port that
		// accepts and never answers must not hang the command.
		cfg.ConnectTimeout = timeouts.Connect
	}
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, CancelRequestDelay: 0, DeadlineDelay: 3 * time.Second}
	}
	return cfg, nil
}

// Connect opens one pgwire session to a RisingWave frontend.
func Connect(ctx context.Context, connString string) (*pgx.Conn, error) {
	cfg, err := ConnConfig(connString)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		// pgconn's message names host, port, user and database, never the password.
		hint := ""
		var ne net.Error
		if errors.As(err, &ne) {
			hint = " (is the frontend running and reachable? RisingWave listens on port 4566 by default)"
		}
		return nil, fmt.Errorf("connect to RisingWave frontend %s:%d%s: %w", cfg.Host, cfg.Port, hint, err)
	}
	return conn, nil
}

// Column is a result column.
type Column struct {
	Name    string `json:"name"`
	TypeOID uint32 `json:"type_oid"`
}

// Result is a query's output in PostgreSQL text format; nil is NULL.
type Result struct {
	Columns []Column
	Rows    [][]*string
	Tag     string // command tag, e.g. "SELECT 3"
}

// SetEpochSQL is the statement that pins a session.
func SetEpochSQL(epoch uint64) string {
	return "SET QUERY_EPOCH = " + strconv.FormatUint(epoch, 10)
}

// ResetEpochSQL unpins it: 0 means latest data.
const ResetEpochSQL = "SET QUERY_EPOCH = 0"

// Query runs sql on conn pinned to epoch: SET QUERY_EPOCH = epoch, the
// query, then SET QUERY_EPOCH = 0 on the same connection whatever happened,
// so a pooled or reused session never keeps reading the past. The caller
// must have validated epoch: RisingWave accepts any value at SET.
func Query(ctx context.Context, conn *pgx.Conn, epoch uint64, sql string) (res *Result, err error) {
	if epoch == 0 {
		return nil, errors.New("query at epoch 0: that is RisingWave's \"latest\", pass the epoch to read")
	}
	defer func() {
		if rerr := ResetEpoch(conn); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	if _, err := conn.Exec(ctx, SetEpochSQL(epoch)); err != nil {
		return nil, fmt.Errorf("%s: %w", SetEpochSQL(epoch), err)
	}
	// Text results render exactly as psql shows them, for any type.
	rows, err := conn.Query(ctx, sql, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return nil, fmt.Errorf("query at epoch %d: %w", epoch, err)
	}
	defer rows.Close()
	res = &Result{}
	for _, fd := range rows.FieldDescriptions() {
		res.Columns = append(res.Columns, Column{Name: fd.Name, TypeOID: fd.DataTypeOID})
	}
	for rows.Next() {
		raw := rows.RawValues()
		row := make([]*string, len(raw))
		for i, v := range raw {
			if v != nil {
				s := string(v)
				row[i] = &s
			}
		}
		res.Rows = append(res.Rows, row)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query at epoch %d: %w", epoch, err)
	}
	res.Tag = rows.CommandTag().String()
	return res, nil
}

// ResetEpoch runs SET QUERY_EPOCH = 0 with its own short deadline. A
// closed connection needs nothing: the setting died with the session.
func ResetEpoch(conn *pgx.Conn) error {
	if conn.IsClosed() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), ResetTimeout)
	defer cancel()
	if _, err := conn.Exec(ctx, ResetEpochSQL); err != nil {
		if conn.IsClosed() {
			return nil
		}
		return fmt.Errorf("reset session (%s): %w", ResetEpochSQL, err)
	}
	return nil
}
