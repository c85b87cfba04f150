//! A walk through the engine: issue, a wrong guess, the right one, a replay, a
//! code bound to a transfer, and the stats as Prometheus text.
//!
//! Run with `cargo run --release --example quickstart`.

use std::time::Duration;

use otpengine_core::{Clock, Config, Engine, Error, ManualClock, Verdict};

fn main() -> Result<(), Error> {
    let clock = ManualClock::new(); // time moves only when we say, so the demo is repeatable
    let engine = Engine::new(Config {
        clock: Clock::manual(&clock),
        ..Config::default()
    })?;

    let key = "+15551234567/login";
    let issued = engine.issue(key, "")?;
    println!(
        "issued a code for {key}, valid for {:?} (sent by SMS, not printed)",
        issued.expires_in
    );

    println!(
        "the person mistypes:      {:?}",
        engine.verify(key, "000000", "")?
    );
    println!(
        "then types it right:      {:?}",
        engine.verify(key, issued.code.as_str(), "")?
    );
    println!(
        "an attacker replays it:   {:?}",
        engine.verify(key, issued.code.as_str(), "")?
    );
    match engine.issue(key, "") {
        Err(e @ Error::RateLimited { .. }) => println!("an immediate resend:      {e}"),
        other => println!("an immediate resend:      {other:?}"),
    }

    let transfer = "EUR 250.00 to DE89 3704 0044 0532 0130 00";
    let issued = engine.issue("alice/transfer", transfer)?;
    let tampered = "EUR 2500.00 to GB33 BUKB 2020 1555 5555 55";
    let verdict = engine.verify("alice/transfer", issued.code.as_str(), tampered)?;
    println!("code used for another transfer: {verdict:?}");
    clock.advance(Duration::from_secs(301));
    let verdict = engine.verify("alice/transfer", issued.code.as_str(), transfer)?;
    println!("the right transfer, 301 s later: {verdict:?}");
    assert_eq!(verdict, Verdict::Expired);

    println!("\n{}", engine.stats().to_prometheus());
    Ok(())
}
