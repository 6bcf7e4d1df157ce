//! The accounts part of the suite: lookups, and email/username uniqueness on create and on
//! replace (including the index following a changed email).

use std::sync::Arc;

use super::T0;
use crate::Error;
use crate::model::{EditorSettings, Notifications, Preferences, Theme, User, UserRole, new_id};
use crate::records::UserStore;

/// A user with every optional field set, so a round trip checks them all.
pub fn sample_user(username: &str) -> User {
    User {
        id: new_id(),
        username: username.to_owned(),
        email: format!("{username}@example.com"),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".to_owned(),
        first_name: Some("Ada".to_owned()),
        last_name: Some("Lovelace".to_owned()),
        role: UserRole::Moderator,
        preferences: Preferences {
            theme: Theme::Dark,
            editor_settings: EditorSettings {
                font_size: 16,
                tab_size: 4,
                word_wrap: false,
                auto_save: false,
            },
            notifications: Notifications {
                email: false,
                browser: true,
                collaborator_joined: false,
                session_shared: true,
            },
        },
        is_active: true,
        email_verified: true,
        last_login_at: Some(T0 + 5),
        created_at: T0,
        updated_at: T0 + 1,
    }
}

pub async fn user_store_suite(store: Arc<dyn UserStore>) {
    let ada = sample_user("ada");
    store.create_user(&ada).await.expect("create ada");
    lookups(&*store, &ada).await;
    duplicates_on_create(&*store, &ada).await;
    replace(&*store, &ada).await;
}

async fn lookups(store: &dyn UserStore, ada: &User) {
    let by_id = store.user_by_id(&ada.id).await.expect("user_by_id");
    assert_eq!(by_id.as_ref(), Some(ada), "a user round trips with every field");
    let by_email = store.user_by_email(&ada.email).await.expect("user_by_email");
    assert_eq!(by_email.as_ref(), Some(ada), "found by email");
    let by_name = store.user_by_username(&ada.username).await.expect("user_by_username");
    assert_eq!(by_name.as_ref(), Some(ada), "found by username");

    assert_eq!(store.user_by_id(&new_id()).await.expect("user_by_id"), None, "unknown id");
    assert_eq!(store.user_by_email("nobody@example.com").await.expect("by email"), None, "unknown email");
    assert_eq!(store.user_by_username("nobody").await.expect("by username"), None, "unknown username");
    let upper = ada.email.to_uppercase();
    assert_eq!(store.user_by_email(&upper).await.expect("by email"), None, "emails compare as stored");
}

async fn duplicates_on_create(store: &dyn UserStore, ada: &User) {
    let mut same_email = sample_user("other");
    same_email.email = ada.email.clone();
    let result = store.create_user(&same_email).await;
    assert!(matches!(result, Err(Error::Duplicate { field: "email" })), "taken email on create: {result:?}");

    let mut same_name = sample_user("other");
    same_name.username = ada.username.clone();
    let result = store.create_user(&same_name).await;
    assert!(matches!(result, Err(Error::Duplicate { field: "username" })), "taken username: {result:?}");

    for refused in [&same_email, &same_name] {
        let stored = store.user_by_id(&refused.id).await.expect("user_by_id");
        assert_eq!(stored, None, "a refused user is not stored, not even partly");
    }
    let other = store.user_by_email("other@example.com").await.expect("by email");
    assert_eq!(other, None, "a refused create claims none of its fields");
    store.create_user(&sample_user("other")).await.expect("the refused fields are still free");
}

async fn replace(store: &dyn UserStore, ada: &User) {
    let bob = sample_user("bob");
    store.create_user(&bob).await.expect("create bob");

    let mut steals_email = bob.clone();
    steals_email.email = ada.email.clone();
    let result = store.replace_user(&steals_email).await;
    assert!(matches!(result, Err(Error::Duplicate { field: "email" })), "taken email on replace: {result:?}");
    let mut steals_name = bob.clone();
    steals_name.username = ada.username.clone();
    let result = store.replace_user(&steals_name).await;
    assert!(matches!(result, Err(Error::Duplicate { field: "username" })), "taken username: {result:?}");
    assert_eq!(store.user_by_id(&bob.id).await.expect("by id").as_ref(), Some(&bob), "refused replace");

    // Keeping one's own email and username is not a duplicate; cleared options stay cleared.
    let mut renamed = ada.clone();
    renamed.first_name = None;
    renamed.last_login_at = None;
    renamed.role = UserRole::Admin;
    renamed.updated_at = T0 + 100;
    assert!(store.replace_user(&renamed).await.expect("replace"), "replace reports an existing user");
    assert_eq!(store.user_by_id(&ada.id).await.expect("by id"), Some(renamed.clone()), "replaced in full");

    // A new email and username move the lookups and free the old ones.
    renamed.email = "ada.l@example.com".to_owned();
    renamed.username = "ada_l".to_owned();
    assert!(store.replace_user(&renamed).await.expect("replace"));
    let by_new = store.user_by_email("ada.l@example.com").await.expect("by email");
    assert_eq!(by_new.map(|u| u.id), Some(ada.id.clone()), "found by the new email");
    let by_new_name = store.user_by_username("ada_l").await.expect("by username");
    assert_eq!(by_new_name.map(|u| u.id), Some(ada.id.clone()), "found by the new username");
    assert_eq!(store.user_by_email(&ada.email).await.expect("by email"), None, "old email released");
    assert_eq!(store.user_by_username(&ada.username).await.expect("by name"), None, "old username released");
    store.create_user(&sample_user("ada")).await.expect("a released email and username can be taken again");

    let ghost = sample_user("ghost");
    assert!(!store.replace_user(&ghost).await.expect("replace"), "replace reports a missing user");
    assert_eq!(store.user_by_id(&ghost.id).await.expect("by id"), None, "replace does not create");
}
