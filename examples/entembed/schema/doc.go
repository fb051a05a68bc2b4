// Package schema is the ent schema of an application that embeds uno's schema types
// next to its own (Order), so that one ent migration covers both. The generated code
// lives in github.com/uno-framework/uno/examples/entembed/ent.
package schema
