-- Blocking key scheme 3 (protocol.matching.blocking KEY_SCHEME): other systems' spellings
-- of one name meet through the keys. A surname's code without its leading particle
-- (O'Brien / Brien, M'Donald / McDonald), a given name less a leading title ("Master
-- John"), names in another script transliterated beside the written form (Иван Петров /
-- Ivan Petrov), and the initials of the formal names a nickname stands for (Kate /
-- Catherine). A node whose children hold keys holds scheme 2's keys (or 1's): 'db upgrade'
-- makes them again after the migrations; an empty one has nothing to key again.
UPDATE blocking_key_scheme SET scheme = 3
 WHERE scheme = 2 AND NOT EXISTS (SELECT 1 FROM child_blocking_keys);
