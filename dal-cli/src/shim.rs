//! TEMPORARY: stand-ins for dal::migrate and dal::backup until those branches land.
#![allow(dead_code, missing_docs, clippy::unused_async)]
pub mod migrate {
    use dal::{Database, Result};
    use serde::{Deserialize, Serialize};
    use std::fmt;
    use std::path::Path;
    #[derive(Debug, Deserialize)]
    pub struct EntitySchema {
        pub name: String,
    }
    #[derive(Debug, Serialize, Default)]
    pub struct MigrationPlan {
        statements: Vec<String>,
    }
    impl MigrationPlan {
        pub fn is_empty(&self) -> bool {
            self.statements.is_empty()
        }
        pub fn statements(&self) -> Vec<String> {
            self.statements.clone()
        }
        pub fn destructive(&self) -> Vec<String> {
            vec![]
        }
    }
    impl fmt::Display for MigrationPlan {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}", self.statements.join(";\n"))
        }
    }
    #[derive(Debug, Serialize)]
    pub struct AppliedMigration {
        pub id: i64,
    }
    impl fmt::Display for AppliedMigration {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}", self.id)
        }
    }
    pub struct Migrator<'d> {
        db: &'d Database,
    }
    impl<'d> Migrator<'d> {
        pub fn new(db: &'d Database) -> Self {
            Migrator { db }
        }
        pub fn schema(self, _s: EntitySchema) -> Self {
            self
        }
        pub fn allow_destructive(self, _b: bool) -> Self {
            self
        }
        pub fn drop_undeclared(self, _b: bool) -> Self {
            self
        }
        pub fn audit_dir(self, _p: impl AsRef<Path>) -> Self {
            self
        }
        pub async fn plan(&self) -> Result<MigrationPlan> {
            Ok(MigrationPlan::default())
        }
        pub async fn apply(&self) -> Result<MigrationPlan> {
            Ok(MigrationPlan::default())
        }
        pub async fn history(&self) -> Result<Vec<AppliedMigration>> {
            let _ = self.db.version_details().await?;
            Ok(vec![])
        }
    }
}
pub mod backup {
    use dal::{Database, Result};
    use serde::Serialize;
    use std::fmt;
    use std::path::Path;
    pub struct Progress {
        pub entity: String,
        pub phase: &'static str,
        pub done: u64,
        pub total: Option<u64>,
    }
    #[derive(Default)]
    pub struct BackupOptions;
    impl BackupOptions {
        pub fn new() -> Self {
            BackupOptions
        }
        pub fn entities<I: IntoIterator<Item = S>, S: Into<String>>(self, _e: I) -> Self {
            self
        }
        pub fn batch_size(self, _n: usize) -> Self {
            self
        }
        pub fn on_progress(self, _f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
            self
        }
    }
    #[derive(Serialize)]
    pub struct Manifest {
        pub n: u64,
    }
    impl fmt::Display for Manifest {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}", self.n)
        }
    }
    pub type CopyReport = Manifest;
    pub async fn entities(db: &Database) -> Result<Vec<String>> {
        let _ = db.version_details().await?;
        Ok(vec![])
    }
    pub async fn export_with(
        _db: &Database,
        _dir: impl AsRef<Path>,
        _o: BackupOptions,
    ) -> Result<Manifest> {
        Ok(Manifest { n: 0 })
    }
    pub async fn import_with(
        _db: &Database,
        _dir: impl AsRef<Path>,
        _o: BackupOptions,
    ) -> Result<Manifest> {
        Ok(Manifest { n: 0 })
    }
    pub async fn copy_with(_a: &Database, _b: &Database, _o: BackupOptions) -> Result<CopyReport> {
        Ok(Manifest { n: 0 })
    }
    pub async fn native_dump(_db: &Database, _f: impl AsRef<Path>) -> Result<()> {
        Ok(())
    }
}
pub trait RollbackExt {
    async fn rollback_entity_to(
        &mut self,
        name: &str,
        id: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> dal::Result<backup::Manifest>;
    async fn rollback_entities_to(
        &mut self,
        name: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> dal::Result<backup::Manifest>;
}
impl RollbackExt for dal::Connection {
    async fn rollback_entity_to(
        &mut self,
        _name: &str,
        _id: &str,
        _at: chrono::DateTime<chrono::Utc>,
    ) -> dal::Result<backup::Manifest> {
        Ok(backup::Manifest { n: 1 })
    }
    async fn rollback_entities_to(
        &mut self,
        _name: &str,
        _at: chrono::DateTime<chrono::Utc>,
    ) -> dal::Result<backup::Manifest> {
        Ok(backup::Manifest { n: 1 })
    }
}
