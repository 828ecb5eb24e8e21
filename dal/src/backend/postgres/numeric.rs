//! PostgreSQL's binary `NUMERIC` form, to and from decimal text.

/// Encodes decimal text (`-12.3400`, `5`, `1e3` not accepted) as PostgreSQL binary NUMERIC.
pub(super) fn encode_numeric(s: &str) -> std::result::Result<Vec<u8>, String> {
    let bad = || format!("{s:?} is not a decimal number");
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let dscale = u16::try_from(frac_part.len()).map_err(|_| bad())?;
    // Pad the integer part on the left and the fraction on the right to groups of 4 digits.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let mut digits_str = String::with_capacity(int_part.len() + frac_part.len() + 8);
    digits_str.extend(std::iter::repeat_n('0', int_pad));
    digits_str.push_str(int_part);
    let int_groups = digits_str.len() / 4;
    digits_str.push_str(frac_part);
    digits_str.extend(std::iter::repeat_n('0', frac_pad));
    let mut groups: Vec<i16> = digits_str
        .as_bytes()
        .chunks(4)
        .map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0')))
        .collect();
    let mut weight = int_groups as i32 - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    let mut out = Vec::with_capacity(8 + groups.len() * 2);
    let ndigits = i16::try_from(groups.len()).map_err(|_| bad())?;
    let weight = if groups.is_empty() {
        0
    } else {
        i16::try_from(weight).map_err(|_| bad())?
    };
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(
        &(if neg && !groups.is_empty() {
            0x4000u16
        } else {
            0
        })
        .to_be_bytes(),
    );
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(out)
}

/// Decodes PostgreSQL binary NUMERIC to decimal text.
pub(super) fn decode_numeric(b: &[u8]) -> Option<String> {
    let rd = |i: usize| -> Option<i16> { Some(i16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?])) };
    let ndigits = rd(0)? as usize;
    let weight = rd(2)? as i32;
    let sign = rd(4)? as u16;
    let dscale = rd(6)? as usize;
    if sign == 0xC000 {
        return Some("NaN".into());
    }
    let digits: Vec<i16> = (0..ndigits).map(|i| rd(8 + i * 2)).collect::<Option<_>>()?;
    let mut int_part = String::new();
    for w in 0..=weight.max(-1) {
        let d = digits.get(w as usize).copied().unwrap_or(0);
        if int_part.is_empty() {
            if d != 0 {
                int_part = d.to_string();
            }
        } else {
            int_part.push_str(&format!("{d:04}"));
        }
    }
    if int_part.is_empty() {
        int_part.push('0');
    }
    let mut frac = String::new();
    let mut idx = weight + 1;
    while frac.len() < dscale {
        let d = if idx < 0 {
            0
        } else {
            digits.get(idx as usize).copied().unwrap_or(0)
        };
        frac.push_str(&format!("{d:04}"));
        idx += 1;
    }
    frac.truncate(dscale);
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    s.push_str(&int_part);
    if !frac.is_empty() {
        s.push('.');
        s.push_str(&frac);
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_round_trips_through_the_binary_form() {
        for s in [
            "0",
            "1",
            "-1",
            "12.3400",
            "0.0001",
            "123456789.987654321",
            "-0.5",
            "10000",
            "99999999",
        ] {
            let enc = encode_numeric(s).unwrap();
            assert_eq!(
                decode_numeric(&enc).unwrap(),
                s.trim_start_matches('+'),
                "{s}"
            );
        }
        assert!(encode_numeric("1e5").is_err());
        assert!(encode_numeric("").is_err());
    }
}
