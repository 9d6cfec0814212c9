int hamok__raft_placeholder_(void);
int hamok__raft_placeholder_(void)
{
    return 0;
}
