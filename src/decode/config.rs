//! The `[decode]` section: how deep to look into tunnels and where the UDP tunnels listen.

use serde::{Deserialize, Serialize};

/// Decoder settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodeConfig {
    /// Tunnels nested inside one another that are opened (GRE in VXLAN is two); a frame with
    /// more is counted as `tunnel_too_deep` and skipped.
    pub max_depth: u8,
    /// UDP ports read as VXLAN (4789 is IANA's; some Linux and OVS setups use 8472).
    pub vxlan_ports: Vec<u16>,
    /// UDP ports read as Geneve.
    pub geneve_ports: Vec<u16>,
    /// UDP ports read as GTP-U.
    pub gtp_u_ports: Vec<u16>,
    /// Also recognise Teredo on ports other than 3544 by its shape (an exact IPv6 length
    /// and a Teredo or link-local address), as relays answer from ports of their own.
    pub teredo_by_shape: bool,
    /// Do not keep the outer flow that carries a tunnel (for an appliance that receives
    /// only mirrored traffic, where the carrier is the mirror session itself).
    pub hide_carriers: bool,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            max_depth: 4,
            vxlan_ports: vec![4789],
            geneve_ports: vec![6081],
            gtp_u_ports: vec![2152],
            teredo_by_shape: true,
            hide_carriers: false,
        }
    }
}

impl DecodeConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=16).contains(&self.max_depth) {
            return Err("decode.max_depth must be between 1 and 16".into());
        }
        let lists = [
            ("vxlan_ports", &self.vxlan_ports),
            ("geneve_ports", &self.geneve_ports),
            ("gtp_u_ports", &self.gtp_u_ports),
        ];
        for (name, ports) in lists {
            if ports.len() > 16 || ports.contains(&0) {
                return Err(format!(
                    "decode.{name} takes at most 16 ports, none of them 0"
                ));
            }
        }
        Ok(())
    }
}
