//! `api.rs`'s checks of a request, one by one.

use super::*;
use crate::runtime::wire::MAX_NAME;

fn body(qty: impl Into<serde_json::Number>, price: impl Into<serde_json::Number>) -> PurchaseBody {
    PurchaseBody {
        user: "alice".into(),
        sku: "widget".into(),
        qty: qty.into(),
        price: price.into(),
    }
}

fn float(f: f64) -> serde_json::Number {
    serde_json::Number::from_f64(f).unwrap()
}

fn code(r: Result<Purchase, ApiError>) -> &'static str {
    r.expect_err("refused").code
}

#[test]
fn amounts_are_checked() {
    assert!(body(2, 10).check().is_ok());
    assert!(body(1, 0).check().is_ok(), "a free item is a purchase");
    assert_eq!(code(body(0, 10).check()), "invalid_amount");
    assert_eq!(code(body(-1, 10).check()), "invalid_amount");
    assert_eq!(code(body(1, -10).check()), "invalid_amount");
    assert_eq!(code(body(float(1.5), 10).check()), "invalid_field");
    // A whole number written as a float was `amount_overflow`.
    assert_eq!(code(body(float(2.0), 10).check()), "invalid_field");
    assert_eq!(code(body(1, float(10.0)).check()), "invalid_field");
    assert_eq!(code(body(float(-0.5), 10).check()), "invalid_amount");
    assert_eq!(code(body(float(-2.0), 10).check()), "invalid_amount");
    assert_eq!(
        code(body(float(1.8446744073709552e19), 1).check()),
        "amount_overflow"
    );
    assert_eq!(
        code(body(1u64 << 32, 1u64 << 32).check()),
        "amount_overflow"
    );
    assert!(body(1u64 << 32, (1u64 << 32) - 1).check().is_ok());
    assert!(body(u64::MAX, 1).check().is_ok());
}

#[test]
fn names_are_checked() {
    let mut b = body(1, 1);
    b.user = "x".repeat(MAX_NAME + 1);
    assert_eq!(code(b.check()), "name_too_long");
    let mut b = body(1, 1);
    b.sku = String::new();
    assert_eq!(code(b.check()), "invalid_name");
}

#[test]
fn keys_are_checked() {
    let with = |v: &str| {
        let mut h = HeaderMap::new();
        h.insert(IDEMPOTENCY_KEY, HeaderValue::from_str(v).unwrap());
        check_key(&h).map_err(|e| e.code)
    };
    assert_eq!(with("ORDER-123").unwrap(), "ORDER-123");
    assert_eq!(with("a:b.c_d~e").unwrap(), "a:b.c_d~e");
    assert_eq!(with("a/b"), Err("invalid_idempotency_key"));
    assert_eq!(with(""), Err("invalid_idempotency_key"));
    assert_eq!(
        with(&"k".repeat(RequestId::MAX_LEN + 1)),
        Err("invalid_idempotency_key")
    );
    assert_eq!(
        check_key(&HeaderMap::new()).unwrap_err().code,
        "missing_idempotency_key"
    );
    // Two keys: the first won silently.
    let mut two = HeaderMap::new();
    two.append(IDEMPOTENCY_KEY, HeaderValue::from_static("order-1"));
    two.append(IDEMPOTENCY_KEY, HeaderValue::from_static("order-2"));
    assert_eq!(
        check_key(&two).unwrap_err().code,
        "duplicate_idempotency_key"
    );
    let mut same = HeaderMap::new();
    same.append(IDEMPOTENCY_KEY, HeaderValue::from_static("order-1"));
    same.append(IDEMPOTENCY_KEY, HeaderValue::from_static("order-1"));
    assert_eq!(
        check_key(&same).unwrap_err().code,
        "duplicate_idempotency_key"
    );
}
