//! SeaORM entities of the bench's tables (the SeaORM contenders).

pub mod kv {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "dal_bench_kv")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i64,
        pub balance: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The columns of a dal entity table with the bench's four fields, in dal's order.
macro_rules! entity_table {
    ($module:ident, $table:literal) => {
        pub mod $module {
            use sea_orm::entity::prelude::*;

            #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                #[sea_orm(primary_key, auto_increment = false)]
                pub id: String,
                pub created_at: DateTimeWithTimeZone,
                pub created_by: Option<String>,
                pub updated_at: DateTimeWithTimeZone,
                pub updated_by: Option<String>,
                pub deleted_at: Option<DateTimeWithTimeZone>,
                pub version: i64,
                pub active: Option<bool>,
                pub age: Option<i64>,
                pub email: Option<String>,
                pub name: Option<String>,
            }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
}
entity_table!(people, "dal_bench_people");
entity_table!(bulk_raw, "dal_bench_bulk_raw");
