"""The retention purge: removes what outlived the UserPipeline's retention policy."""
