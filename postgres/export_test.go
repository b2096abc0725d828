package postgres

// MigrateFS runs migrations from fsys (tests use it to apply broken ones).
var MigrateFS = migrateFS
