//! Reading the live schema of an entity from the catalog and its `_meta` table.
