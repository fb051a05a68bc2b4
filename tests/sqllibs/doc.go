// Package sqllibs tests uno with libraries built on database/sql — sqlx — which the
// library itself does not depend on: they live in this module of their own, so that
// their dependencies stay out of uno's go.mod.
package sqllibs
