package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twoway/twoway/internal/tables"
)

// tableCommands are the subcommands of "twoway table".
var tableCommands = []command{
	{name: "create", summary: "turn a topic into an Iceberg table", run: runTableCreate},
	{name: "list", summary: "list the tables", run: runTableList},
	{name: "describe", summary: "describe a table: columns, metadata, offsets", run: runTableDescribe},
	{name: "alter", summary: "evolve a table's schema (add optional columns)", run: runTableAlter},
	{name: "drop", summary: "drop a table (its topic stays)", run: runTableDrop},
}

func runTable(ctx context.Context, e *env, args []string) error {
	return runGroup(ctx, e, args, "table", `Topics materialized as Apache Iceberg tables of Parquet in the bucket
(docs/TABLES.md). Query them with twoway sql.
`+connectHelp, tableCommands)
}

// withTables opens the connection as a tables client and runs f.
func withTables(ctx context.Context, e *env, conn *connection, f func(c *tables.Client) error) error {
	return withHTTP(ctx, e, conn, func(base string, hc *http.Client) error { return f(tables.NewClient(base, hc)) })
}

func readSchema(path string) (*tables.Schema, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return tables.ParseSchema(data)
}

func runTableCreate(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("table create", "twoway table create NAME --topic TOPIC [--schema FILE] [--partition-by SPEC] [--commit-interval D] [--retention D]", `
Create table NAME on TOPIC: every record of the topic, from its start,
becomes a row of an Iceberg table under tables/NAME/ in the bucket, within
about the commit interval. Columns: _partition, _offset, _timestamp, _key,
_headers, then the raw value, or with --schema the columns of a JSON file
{"columns": [{"name": "x", "type": "long", "required": true}, ...]} parsed
from JSON values. Records that do not match go to the table NAME_dlq with
their error. --partition-by takes Iceberg transforms: a column, or
year|month|day|hour(col), bucket(N, col), truncate(W, col), comma-separated.
`+connectHelp)
	topic := fs.String("topic", "", "the `TOPIC` whose records the table holds")
	schemaFile := fs.String("schema", "", "JSON `FILE` declaring the columns parsed from JSON values")
	partitionBy := fs.String("partition-by", "", "Iceberg partition `SPEC`, such as \"day(_timestamp)\"")
	interval := fs.Duration("commit-interval", 0, "new records are in the table within about this `duration` (default 10s)")
	retention := fs.String("retention", "", "delete rows older than this `duration` (by _timestamp; units s, m, h, d, w) from the table;\nthe topic's own retention is separate (default: keep them for ever)")
	conn := addConnectionFlags(fs)
	pos, err := fs.parseArgs(e, args, "table name")
	if err != nil {
		return err
	}
	if *topic == "" {
		return conn.usageError(e, errors.New("--topic TOPIC is required"))
	}
	body := tables.CreateBody{Name: pos[0], Topic: *topic, PartitionBy: *partitionBy}
	if *interval != 0 {
		body.CommitInterval = interval.String()
	}
	if *retention != "" && *retention != "forever" {
		body.Retention = *retention
	}
	if *schemaFile != "" {
		if body.Schema, err = readSchema(*schemaFile); err != nil {
			return fmt.Errorf("--schema %s: %w", *schemaFile, err)
		}
	}
	return withTables(ctx, e, conn, func(c *tables.Client) error {
		t, err := c.Create(ctx, body)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "created table %s on topic %s (%d columns; dead letters in %s)\n", t.Name, t.Topic, len(t.Columns), t.DLQ)
		return err
	})
}

func runTableList(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("table list", "twoway table list [--json]", `
List the tables: topic, rows and dead letters committed, how far behind
the topic they are, and the current metadata version.
`+connectHelp)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	conn := addConnectionFlags(fs)
	if _, err := fs.parseArgs(e, args); err != nil {
		return err
	}
	return withTables(ctx, e, conn, func(c *tables.Client) error {
		list, err := c.List(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			if list == nil {
				list = []tables.Info{}
			}
			return printJSON(e.stdout, list)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tTOPIC\tROWS\tDEAD LETTERS\tLAG\tVERSION\tCOMMITTED")
		for _, t := range list {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", t.Name, t.Topic, t.Rows, t.DLQRows, lag(t), t.Version, committed(t))
		}
		return tw.Flush()
	})
}

func lag(t tables.Info) int64 {
	var n int64
	for _, p := range t.Partitions {
		n += p.End - p.Offset
	}
	return n
}

func committed(t tables.Info) string {
	if t.CommittedMs == 0 {
		return "never"
	}
	return time.UnixMilli(t.CommittedMs).UTC().Format(time.RFC3339)
}

func runTableDescribe(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("table describe", "twoway table describe NAME [--json]", `
Describe a table: its columns, partition spec, commit interval, current
Iceberg metadata file, and per partition the table's offset and the
topic's end.
`+connectHelp)
	asJSON := fs.Bool("json", false, "print JSON")
	conn := addConnectionFlags(fs)
	pos, err := fs.parseArgs(e, args, "table name")
	if err != nil {
		return err
	}
	return withTables(ctx, e, conn, func(c *tables.Client) error {
		t, err := c.Describe(ctx, pos[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, t)
		}
		w := e.stdout
		fmt.Fprintf(w, "Table:           %s\nTopic:           %s\nDead letters:    %s (%d rows)\nRows:            %d\n", t.Name, t.Topic, t.DLQ, t.DLQRows, t.Rows)
		pb := t.PartitionBy
		if pb == "" {
			pb = "(unpartitioned)"
		}
		meta := t.Metadata
		if meta == "" {
			meta = "(nothing committed yet)"
		}
		fmt.Fprintf(w, "Partition by:    %s\nCommit interval: %s\nRetention:       %s\nMetadata:        %s (v%d)\nCommits:         %d, last %s\nLive files:      %d\n",
			pb, t.CommitInterval, t.Retention, meta, t.Version, t.Commits, committed(t), t.Files)
		if t.Materializer != "" {
			fmt.Fprintf(w, "Materializer:    %s\n", t.Materializer)
		}
		fmt.Fprintln(w, "\nColumns:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, col := range t.Columns {
			req := ""
			if col.Required {
				req = "required"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", col.Name, col.Type, req)
		}
		tw.Flush()
		fmt.Fprintln(w, "\nPartitions:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  PARTITION\tTABLE OFFSET\tTOPIC END\tLAG")
		for _, p := range t.Partitions {
			fmt.Fprintf(tw, "  %d\t%d\t%d\t%d\n", p.Partition, p.Offset, p.End, p.End-p.Offset)
		}
		return tw.Flush()
	})
}

func runTableAlter(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("table alter", "twoway table alter NAME --schema FILE", `
Evolve a table's schema: FILE is the whole new schema, the old columns
unchanged and new optional columns at the end. The table gets a new
Iceberg schema id; old data files stay as they are and read null in the
new columns.
`+connectHelp)
	schemaFile := fs.String("schema", "", "JSON `FILE` with the new columns")
	conn := addConnectionFlags(fs)
	pos, err := fs.parseArgs(e, args, "table name")
	if err != nil {
		return err
	}
	if *schemaFile == "" {
		return conn.usageError(e, errors.New("--schema FILE is required"))
	}
	s, err := readSchema(*schemaFile)
	if err != nil {
		return fmt.Errorf("--schema %s: %w", *schemaFile, err)
	}
	return withTables(ctx, e, conn, func(c *tables.Client) error {
		t, err := c.Alter(ctx, pos[0], s)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "altered table %s: %d columns\n", t.Name, len(t.Columns))
		return err
	})
}

func runTableDrop(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("table drop", "twoway table drop NAME", `
Drop a table and its dead-letter table. The topic and its records stay;
the table's files are deleted by garbage collection once no reader can
still be using them.
`+connectHelp)
	conn := addConnectionFlags(fs)
	pos, err := fs.parseArgs(e, args, "table name")
	if err != nil {
		return err
	}
	return withTables(ctx, e, conn, func(c *tables.Client) error {
		if err := c.Drop(ctx, pos[0]); err != nil {
			return err
		}
		_, err := fmt.Fprintf(e.stdout, "dropped table %s\n", pos[0])
		return err
	})
}

func runSQL(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("sql", "twoway sql \"QUERY\" [--format table|csv|json]", `
Run one read-only SQL query (DuckDB's dialect) over the tables: each table
NAME (and NAME_dlq) is a view of its Iceberg snapshot plus the records
committed since, so the query sees every acknowledged record. A topic's
raw records are topic('NAME'). Queries cannot read or write other files,
install, load or attach anything, and run within memory, thread and time
limits (docs/TABLES.md).
`+connectHelp)
	format := fs.String("format", "table", "output `format`: table, csv or json")
	conn := addConnectionFlags(fs)
	pos, err := fs.parseArgs(e, args, "query")
	if err != nil {
		return err
	}
	switch *format {
	case "table", "csv", "json":
	default:
		return conn.usageError(e, fmt.Errorf("--format %q: use table, csv or json", *format))
	}
	return withTables(ctx, e, conn, func(c *tables.Client) error {
		if *format == "csv" {
			out, err := c.SQL(ctx, pos[0], tables.MediaCSV)
			if err != nil {
				return err
			}
			_, err = e.stdout.Write(out)
			return err
		}
		out, err := c.SQL(ctx, pos[0], tables.MediaJSON)
		if err != nil {
			return err
		}
		var res struct {
			Columns []struct {
				Name string `json:"name"`
				Type string `json:"type"`
			} `json:"columns"`
			Rows [][]json.RawMessage `json:"rows"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			return fmt.Errorf("unexpected answer: %v", err)
		}
		if *format == "json" {
			var b bytes.Buffer
			b.WriteString("[")
			for i, row := range res.Rows {
				if i > 0 {
					b.WriteString(",")
				}
				b.WriteString("\n  {")
				for j, v := range row {
					if j > 0 {
						b.WriteString(", ")
					}
					k, _ := json.Marshal(res.Columns[j].Name)
					b.Write(k)
					b.WriteString(": ")
					b.Write(v)
				}
				b.WriteString("}")
			}
			if len(res.Rows) > 0 {
				b.WriteString("\n")
			}
			b.WriteString("]\n")
			_, err := e.stdout.Write(b.Bytes())
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		var names []string
		for _, c := range res.Columns {
			names = append(names, c.Name)
		}
		fmt.Fprintln(tw, strings.Join(names, "\t"))
		for _, row := range res.Rows {
			cells := make([]string, len(row))
			for j, v := range row {
				cells[j] = cellText(v)
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
		tw.Flush()
		n := len(res.Rows)
		s := "s"
		if n == 1 {
			s = ""
		}
		_, err = fmt.Fprintf(e.stdout, "(%d row%s)\n", n, s)
		return err
	})
}

// cellText shows a JSON value in a terminal table: strings unquoted,
// null empty, the rest as JSON.
func cellText(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return strings.NewReplacer("\t", " ", "\n", " ").Replace(s)
	}
	if string(v) == "null" {
		return "NULL"
	}
	return string(v)
}

// tablesConfig places the table file cache under --cache-dir.
func tablesConfig(cacheDir string) tables.Config {
	if cacheDir == "" {
		return tables.Config{}
	}
	return tables.Config{CacheDir: filepath.Join(cacheDir, "tables")}
}
