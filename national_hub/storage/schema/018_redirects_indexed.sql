-- The national ids that redirect to another, indexed: retiring an id redirects every
-- id that pointed to it (ResolutionStore.retire_if_empty), and each is found here
-- rather than by reading every national child. Few ids redirect, so the index is small.
CREATE INDEX national_children_redirected ON national_children (redirect_to)
    WHERE redirect_to IS NOT NULL;
