package compat

import "github.com/uno-framework/uno/provider"

// UnoDatabaseProviderProtocol is the legacy name of the database provider interface.
// *provider.Provider and *UnoDatabaseProvider satisfy it.
//
// Deprecated: use [provider.DatabaseProvider].
type UnoDatabaseProviderProtocol = provider.DatabaseProvider

// UnoDBManagerProtocol is the legacy name of the database manager interface (create,
// drop and look up databases). *provider.Admin and *UnoDBManager satisfy it.
//
// Deprecated: use [provider.DatabaseManager].
type UnoDBManagerProtocol = provider.DatabaseManager
