//! Accounts in MongoDB: the `users` collection, shaped like the seeds' user model and the users
//! mongo-init.js inserts. Uniqueness of email and username is the unique indexes' job.

use async_trait::async_trait;
use mongodb::bson::{Document, doc};
use serde::{Deserialize, Serialize};

use super::fields::{self, id_to_bson};
use super::{MongoStore, USERS, backend, fields_to_set, write_error};
use crate::Result;
use crate::model::{Millis, Preferences, User, UserRole};
use crate::records::UserStore;

/// The document form of a [`User`] (serde's remote derive: the fields must match the model's,
/// which the compiler checks). Optional fields default when missing, for documents from
/// mongo-init.js and the seeds' code; `lastLogin` is the seeds' mongo-init name for `lastLoginAt`.
#[derive(Serialize, Deserialize)]
#[serde(remote = "User", rename_all = "camelCase")]
struct UserDocument {
    #[serde(rename = "_id", with = "fields::id")]
    id: String,
    username: String,
    email: String,
    #[serde(rename = "password")]
    password_hash: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    role: UserRole,
    #[serde(default)]
    preferences: Preferences,
    #[serde(default = "yes")]
    is_active: bool,
    #[serde(default)]
    email_verified: bool,
    #[serde(default, alias = "lastLogin", with = "fields::optional_time")]
    last_login_at: Option<Millis>,
    #[serde(default, with = "fields::time")]
    created_at: Millis,
    #[serde(default, with = "fields::time")]
    updated_at: Millis,
}

fn yes() -> bool {
    true
}

stored_in_collection!(users, USERS, User, "UserDocument");

impl MongoStore {
    async fn find_user(&self, filter: Document) -> Result<Option<User>> {
        Ok(self.users().find_one(filter).await.map_err(backend)?.map(Into::into))
    }
}

#[async_trait]
impl UserStore for MongoStore {
    async fn create_user(&self, user: &User) -> Result<()> {
        self.users().insert_one(Stored(user.clone())).await.map(drop).map_err(write_error)
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>> {
        self.find_user(doc! { "_id": id_to_bson(id) }).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        self.find_user(doc! { "email": email }).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        self.find_user(doc! { "username": username }).await
    }

    async fn replace_user(&self, user: &User) -> Result<bool> {
        let fields = fields_to_set(&Stored(user.clone()))?;
        let result = self
            .users()
            .update_one(doc! { "_id": id_to_bson(&user.id) }, doc! { "$set": fields })
            .await
            .map_err(write_error)?;
        Ok(result.matched_count == 1)
    }
}
