// Package compat keeps code written against uno's legacy API compiling and working:
// [UnoDatabaseProvider], [UnoDBManager] and [ConnectionConfig] (with its db_* fields)
// forward to the types of package provider, and the legacy interface names
// [UnoDatabaseProviderProtocol] and [UnoDBManagerProtocol] are aliases of its interfaces.
//
// Everything here is deprecated. Each legacy value logs one warning through log/slog
// the first time it is used, naming its replacement:
//
//	ConnectionConfig            -> provider.Config (provider.ConfigFromMap also reads db_* keys)
//	UnoDatabaseProvider         -> *provider.Provider (provider.New)
//	UnoDBManager                -> *provider.Admin ((*provider.Provider).Admin)
//	UnoDatabaseProviderProtocol -> provider.DatabaseProvider
//	UnoDBManagerProtocol        -> provider.DatabaseManager
package compat
