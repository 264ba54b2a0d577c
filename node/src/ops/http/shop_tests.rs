//! The checks of a top-up's, a restock's and a refund's body, and the
//! per-operation counters.

use super::*;
use serde_json::json;

fn topup(v: serde_json::Value) -> Result<Operation, &'static str> {
    let body: TopUpBody = serde_json::from_value(v).map_err(|_| "shape")?;
    body.check().map_err(|e| e.code())
}

fn restock(v: serde_json::Value) -> Result<Operation, &'static str> {
    let body: RestockBody = serde_json::from_value(v).map_err(|_| "shape")?;
    body.check().map_err(|e| e.code())
}

#[test]
fn bad_amounts_and_names_get_their_codes() {
    assert_eq!(
        topup(json!({"user": "carol", "amount": 5})),
        Ok(Operation::TopUp {
            user: "carol".into(),
            amount: 5
        })
    );
    assert_eq!(
        topup(json!({"user": "carol", "amount": u64::MAX})),
        Ok(Operation::TopUp {
            user: "carol".into(),
            amount: u64::MAX
        })
    );
    assert_eq!(
        topup(json!({"user": "carol", "amount": 0})),
        Err("invalid_amount")
    );
    assert_eq!(
        topup(json!({"user": "carol", "amount": -3})),
        Err("invalid_amount")
    );
    assert_eq!(
        topup(json!({"user": "carol", "amount": 1.5})),
        Err("invalid_field")
    );
    let huge: serde_json::Value = serde_json::from_str("18446744073709551616").unwrap();
    assert_eq!(
        topup(json!({"user": "carol", "amount": huge})),
        Err("amount_overflow")
    );
    assert_eq!(topup(json!({"user": "", "amount": 1})), Err("invalid_name"));
    let long = "x".repeat(65);
    assert_eq!(
        topup(json!({"user": long, "amount": 1})),
        Err("name_too_long")
    );
    assert_eq!(
        restock(json!({"sku": "gadget", "qty": 0})),
        Err("invalid_amount")
    );
    assert_eq!(
        restock(json!({"sku": "gadget", "qty": 4})),
        Ok(Operation::Restock {
            sku: "gadget".into(),
            qty: 4
        })
    );
    assert_eq!(
        restock(json!({"sku": "gadget", "qty": 4, "cost": 2})),
        Err("shape")
    );
}

fn refund(v: serde_json::Value) -> Result<Operation, &'static str> {
    let body: RefundBody = serde_json::from_value(v).map_err(|_| "shape")?;
    body.check().map_err(|e| e.code())
}

#[test]
fn a_refund_names_a_purchase_and_maybe_a_qty_and_bad_ones_get_their_codes() {
    let of = |qty| Operation::Refund {
        purchase: RequestId::new("order-1"),
        qty,
    };
    assert_eq!(refund(json!({"purchase": "order-1"})), Ok(of(None)));
    assert_eq!(
        refund(json!({"purchase": "order-1", "qty": null})),
        Ok(of(None))
    );
    assert_eq!(
        refund(json!({"purchase": "order-1", "qty": 2})),
        Ok(of(Some(2)))
    );
    let huge: serde_json::Value = serde_json::from_str("18446744073709551616").unwrap();
    for bad in [json!(0), json!(-1), json!(1.5), huge] {
        assert_eq!(
            refund(json!({"purchase": "order-1", "qty": bad})),
            Err("invalid_qty"),
            "{bad}"
        );
    }
    let long = "x".repeat(RequestId::MAX_LEN + 1);
    for bad in ["", long.as_str()] {
        assert_eq!(
            refund(json!({"purchase": bad, "qty": 1})),
            Err("invalid_purchase")
        );
    }
    assert_eq!(refund(json!({"qty": 1})), Err("shape"));
    assert_eq!(
        refund(json!({"purchase": "order-1", "user": "alice"})),
        Err("shape")
    );
}

#[test]
fn answers_and_refusals_are_counted_by_operation() {
    let c = OpCounters::default();
    c.answered("top-up", Some(&Verdict::Committed));
    c.answered("top-up", Some(&Verdict::Committed));
    c.answered("restock", None);
    c.answered("refund", Some(&Verdict::Committed));
    let refused: Result<(), ApiError> = Err(ApiError::bad_request("invalid_amount", "0"));
    assert!(c.refusing("topup", refused).is_err());
    let get = |f: &Family<Labels, Counter>, l: Labels| f.get_or_create(&l).get();
    let answered = |op, outcome| get(&c.answered, [("op", op), ("outcome", outcome)]);
    assert_eq!(answered("topup", "committed"), 2);
    assert_eq!(answered("restock", "in_progress"), 1);
    assert_eq!(answered("purchase", "committed"), 0);
    assert_eq!(answered("refund", "committed"), 1);
    let rejected = get(&c.rejected, [("op", "topup"), ("code", "invalid_amount")]);
    assert_eq!(rejected, 1);
}

#[test]
fn a_restock_with_a_price_is_priced_and_a_bad_price_is_invalid_price() {
    assert_eq!(
        restock(json!({"sku": "gadget", "qty": 4, "price": 7})),
        Ok(Operation::PricedRestock {
            sku: "gadget".into(),
            qty: 4,
            price: 7
        })
    );
    // A price change alone.
    assert_eq!(
        restock(json!({"sku": "gadget", "qty": 0, "price": 7})),
        Ok(Operation::PricedRestock {
            sku: "gadget".into(),
            qty: 0,
            price: 7
        })
    );
    assert_eq!(
        restock(json!({"sku": "gadget", "qty": 4, "price": null})),
        Ok(Operation::Restock {
            sku: "gadget".into(),
            qty: 4
        })
    );
    for bad in [json!(0), json!(-1), json!(1.5)] {
        assert_eq!(
            restock(json!({"sku": "gadget", "qty": 4, "price": bad})),
            Err("invalid_price"),
            "{bad}"
        );
    }
    let huge: serde_json::Value = serde_json::from_str("18446744073709551616").unwrap();
    assert_eq!(
        restock(json!({"sku": "gadget", "qty": 4, "price": huge})),
        Err("invalid_price")
    );
    assert_eq!(
        restock(json!({"sku": "gadget", "qty": -1, "price": 3})),
        Err("invalid_amount")
    );
}
