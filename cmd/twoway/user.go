package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

var userCommands = []command{
	{name: "create", summary: "create a user, or set its password (read from stdin)", run: runUserCreate},
	{name: "list", summary: "list the users", run: runUserList},
	{name: "delete", summary: "delete a user", run: runUserDelete},
}

func runUser(ctx context.Context, e *env, args []string) error {
	return runGroup(ctx, e, args, "user", `Manage the users that authenticate with SASL (PLAIN, SCRAM-SHA-256,
SCRAM-SHA-512) on Kafka and HTTP Basic on HTTP (docs/SECURITY.md). The log
keeps salted, iterated SCRAM credentials, never a password. Straight on the
bucket (--bucket) a command needs no user: whoever can write the bucket
holds all the data anyway; that is how the first user is made.
`+connectHelp, userCommands)
}

// apiCall sends a JSON request and decodes a JSON answer (out may be nil).
func apiCall(ctx context.Context, hc *http.Client, method, u string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func runUserCreate(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("user create", "twoway user create NAME --password-stdin [--mechanism SCRAM-SHA-256|SCRAM-SHA-512]...", `
Create user NAME, or set its password, with the password read from the
first line of stdin. Credentials are made for both SCRAM mechanisms unless
--mechanism names one; PLAIN and HTTP Basic check the password against
them.
`+connectHelp)
	stdin := fs.Bool("password-stdin", false, "read the password from stdin (required: passwords never go on a command line)")
	var mechs multiFlag
	fs.Var(&mechs, "mechanism", "SCRAM `mechanism` to make credentials for (repeatable; default both)")
	conn := addConnectionFlags(fs)
	pos, err := fs.parseArgs(e, args, "user name")
	if err != nil {
		return err
	}
	if !*stdin {
		return conn.usageError(e, errors.New("--password-stdin is required: give the password on stdin"))
	}
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return errors.New("no password on stdin")
	}
	return withHTTP(ctx, e, conn, func(base string, hc *http.Client) error {
		if err := apiCall(ctx, hc, http.MethodPut, base+"/v1/users/"+url.PathEscape(pos[0]), map[string]any{"password": password, "mechanisms": []string(mechs)}, nil); err != nil {
			return err
		}
		_, err := fmt.Fprintf(e.stdout, "user %s set\n", pos[0])
		return err
	})
}

func runUserList(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("user list", "twoway user list [--json]", "List the users and their SCRAM mechanisms.\n"+connectHelp)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	conn := addConnectionFlags(fs)
	if _, err := fs.parseArgs(e, args); err != nil {
		return err
	}
	return withHTTP(ctx, e, conn, func(base string, hc *http.Client) error {
		var out struct {
			Users []struct {
				Name       string   `json:"name"`
				Mechanisms []string `json:"mechanisms"`
				CreatedMs  int64    `json:"created_ms"`
			} `json:"users"`
		}
		if err := apiCall(ctx, hc, http.MethodGet, base+"/v1/users", nil, &out); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, out.Users)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tMECHANISMS\tCREATED")
		for _, u := range out.Users {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, strings.Join(u.Mechanisms, ","), time.UnixMilli(u.CreatedMs).UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	})
}

func runUserDelete(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("user delete", "twoway user delete NAME", "Delete a user: it can no longer authenticate (connections it has open stay).\n"+connectHelp)
	conn := addConnectionFlags(fs)
	pos, err := fs.parseArgs(e, args, "user name")
	if err != nil {
		return err
	}
	return withHTTP(ctx, e, conn, func(base string, hc *http.Client) error {
		if err := apiCall(ctx, hc, http.MethodDelete, base+"/v1/users/"+url.PathEscape(pos[0]), nil, nil); err != nil {
			return err
		}
		_, err := fmt.Fprintf(e.stdout, "deleted user %s\n", pos[0])
		return err
	})
}

var tokenCommands = []command{
	{name: "create", summary: "create a bearer token for a principal; printed once", run: runTokenCreate},
	{name: "list", summary: "list the tokens (never their secrets)", run: runTokenList},
	{name: "delete", summary: "revoke a token", run: runTokenDelete},
}

func runToken(ctx context.Context, e *env, args []string) error {
	return runGroup(ctx, e, args, "token", `Manage HTTP bearer tokens (docs/SECURITY.md). A token is printed once, when
created; the log keeps only its hash. Clients send it as
"Authorization: Bearer TOKEN"; the CLI's --server mode takes it from --token
or $TWOWAY_TOKEN.
`+connectHelp, tokenCommands)
}

func runTokenCreate(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("token create", "twoway token create --principal User:NAME [--expires D]", "Create a bearer token for a principal and print it: it is not shown again.\n"+connectHelp)
	principal := fs.String("principal", "", "the `principal` the token authenticates as, User:NAME")
	expires := fs.Duration("expires", 0, "how long the token is valid, a `duration` such as 720h (default: no expiry)")
	conn := addConnectionFlags(fs)
	if _, err := fs.parseArgs(e, args); err != nil {
		return err
	}
	if *principal == "" {
		return conn.usageError(e, errors.New("--principal User:NAME is required"))
	}
	body := map[string]string{"principal": *principal}
	if *expires != 0 {
		if *expires < 0 {
			return conn.usageError(e, errors.New("--expires must be positive"))
		}
		body["expires"] = expires.String()
	}
	return withHTTP(ctx, e, conn, func(base string, hc *http.Client) error {
		var out struct {
			Token string `json:"token"`
		}
		if err := apiCall(ctx, hc, http.MethodPost, base+"/v1/tokens", body, &out); err != nil {
			return err
		}
		_, err := fmt.Fprintln(e.stdout, out.Token)
		return err
	})
}

func runTokenList(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("token list", "twoway token list [--json]", "List the tokens: id, principal, expiry.\n"+connectHelp)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	conn := addConnectionFlags(fs)
	if _, err := fs.parseArgs(e, args); err != nil {
		return err
	}
	return withHTTP(ctx, e, conn, func(base string, hc *http.Client) error {
		var out struct {
			Tokens []struct {
				ID        string `json:"id"`
				Principal string `json:"principal"`
				CreatedMs int64  `json:"created_ms"`
				ExpiresMs int64  `json:"expires_ms"`
			} `json:"tokens"`
		}
		if err := apiCall(ctx, hc, http.MethodGet, base+"/v1/tokens", nil, &out); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, out.Tokens)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPRINCIPAL\tCREATED\tEXPIRES")
		for _, t := range out.Tokens {
			exp := "never"
			if t.ExpiresMs != 0 {
				exp = time.UnixMilli(t.ExpiresMs).UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, t.Principal, time.UnixMilli(t.CreatedMs).UTC().Format(time.RFC3339), exp)
		}
		return tw.Flush()
	})
}

func runTokenDelete(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("token delete", "twoway token delete ID", "Revoke a token: requests with it are refused from the next commit on.\n"+connectHelp)
	conn := addConnectionFlags(fs)
	pos, err := fs.parseArgs(e, args, "token id")
	if err != nil {
		return err
	}
	return withHTTP(ctx, e, conn, func(base string, hc *http.Client) error {
		if err := apiCall(ctx, hc, http.MethodDelete, base+"/v1/tokens/"+url.PathEscape(pos[0]), nil, nil); err != nil {
			return err
		}
		_, err := fmt.Fprintf(e.stdout, "revoked token %s\n", pos[0])
		return err
	})
}
