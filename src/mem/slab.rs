//! A fixed-capacity slab with generation-tagged keys.
//!
//! All slots are allocated once, at start-up. A key carries the generation of its slot, so a
//! readiness event that arrives for a connection already closed (and whose slot was reused) is
//! recognised as stale and ignored instead of being applied to the new occupant.

use mio::Token;

/// Low bits of a token hold the slot index, the rest its generation. 20 bits keep room for a
/// 12-bit generation on 32-bit targets (Raspberry Pi OS armhf).
const INDEX_BITS: u32 = 20;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;

/// Largest capacity a slab may have; the top indices are left for the server's own tokens.
pub(crate) const MAX_CAPACITY: usize = INDEX_MASK - 16;

/// A slot index with the generation it was handed out at.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) struct Key {
    pub index: u32,
    generation: u32,
}

impl Key {
    /// The generation of the slot this key was handed out at.
    pub fn generation(self) -> u32 {
        self.generation
    }

    pub fn token(self) -> Token {
        Token(((self.generation as usize) << INDEX_BITS) | self.index as usize)
    }

    /// The key a token names, if it is a slot token at all (server tokens use the top indices).
    pub fn from_token(token: Token) -> Option<Key> {
        let index = token.0 & INDEX_MASK;
        if index >= MAX_CAPACITY {
            return None;
        }
        let generation = (token.0 >> INDEX_BITS) as u32 & generation_mask();
        Some(Key { index: index as u32, generation })
    }
}

/// Generations wrap within the bits a token has room for.
fn generation_mask() -> u32 {
    let bits = usize::BITS - INDEX_BITS;
    if bits >= 32 { u32::MAX } else { (1u32 << bits) - 1 }
}

struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    /// Indices of empty slots, used as a stack so recently freed (cache-warm) slots come first.
    free: Vec<u32>,
}

impl<T> Slab<T> {
    pub fn with_capacity(capacity: usize) -> Slab<T> {
        assert!(capacity <= MAX_CAPACITY, "slab capacity {capacity} over {MAX_CAPACITY}");
        let slots = (0..capacity).map(|_| Slot { generation: 0, value: None }).collect();
        let free = (0..capacity as u32).rev().collect();
        Slab { slots, free }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    /// Stores `value` and returns its key, or gives `value` back when every slot is taken.
    pub fn insert(&mut self, value: T) -> Result<Key, T> {
        let Some(index) = self.free.pop() else { return Err(value) };
        let slot = &mut self.slots[index as usize];
        slot.value = Some(value);
        Ok(Key { index, generation: slot.generation })
    }

    pub fn get(&self, key: Key) -> Option<&T> {
        let slot = self.slots.get(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.value.as_ref()
    }

    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.value.as_mut()
    }

    /// Takes the value out and bumps the slot's generation, so the old key goes stale.
    pub fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1) & generation_mask();
        self.free.push(key.index);
        Some(value)
    }

    /// The key of the occupant of slot `index`, if any.
    pub fn key_at(&self, index: usize) -> Option<Key> {
        let slot = self.slots.get(index)?;
        slot.value.as_ref()?;
        Some(Key { index: index as u32, generation: slot.generation })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_returns_value_when_full() {
        let mut slab = Slab::with_capacity(2);
        slab.insert(1).unwrap();
        slab.insert(2).unwrap();
        assert_eq!(slab.insert(3), Err(3));
    }

    #[test]
    fn stale_key_is_ignored_after_reuse() {
        let mut slab = Slab::with_capacity(1);
        let old = slab.insert("a").unwrap();
        assert_eq!(slab.remove(old), Some("a"));
        let new = slab.insert("b").unwrap();
        assert_eq!(new.index, old.index);
        assert_eq!(slab.get(old), None);
        assert_eq!(Key::from_token(old.token()).and_then(|k| slab.get(k)), None);
        assert_eq!(Key::from_token(new.token()).and_then(|k| slab.get(k)), Some(&"b"));
        assert_eq!(slab.remove(old), None);
    }

    #[test]
    fn server_tokens_are_not_slot_keys() {
        assert_eq!(Key::from_token(Token(usize::MAX)), None);
        assert_eq!(Key::from_token(Token(usize::MAX - 3)), None);
    }
}
