// Package migrations holds the versioned SQL schema of liverecall, embedded
// into the binary. Files are named NNN_description.sql and numbered without
// gaps; each runs in its own transaction. The runner is in postgres/
// (postgres.Migrate), which is the only package that talks to the database.
package migrations

import goembed "embed"

// FS holds the *.sql files of this folder.
//
//go:embed *.sql
var FS goembed.FS
