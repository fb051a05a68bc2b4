// Package pgclone gives tests fresh PostgreSQL databases cheaply: it clones them from a
// template database (CREATE DATABASE ... TEMPLATE), building the template once per
// server, under an advisory lock so that concurrent test processes never race. It is
// the shared machinery of tests/pgtest (one database per test package, from an empty
// template) and package uowtest (one database per test, from a template migrated with
// uno's tables and the application's own).
//
// Clones are named uno_test_<UTC time>_<random>_<label>; one left behind by a process
// that died is dropped by a later Clone once it is a day old. A template is built under
// another name and renamed last, so a process that dies half-way never leaves a
// half-made template behind; it does not allow connections, so cloning it never fails
// because someone is connected to it.
package pgclone
