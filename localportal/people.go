package localportal

// Person is one of the local portal's people.
type Person struct {
	ID                  int64
	FirstName, LastName string
	Role                string // what they are on the desk, as the page shows it
	Admin               bool   // a portal administrator (user.admin)
	Agent, Tech, Client bool   // the roles seeded on the first run
}

// Name is the person's full name.
func (p Person) Name() string { return p.FirstName + " " + p.LastName }

// People are the local portal's users: the administrator who installs the
// application (a client), a second administrator, two agents, a second-line
// engineer and a user with no role.
var People = []Person{
	{ID: 1, FirstName: "Anna", LastName: "Petrova", Role: "administrator", Admin: true, Client: true},
	{ID: 2, FirstName: "Boris", LastName: "Volkov", Role: "administrator", Admin: true, Client: true},
	{ID: 3, FirstName: "Olga", LastName: "Smirnova", Role: "agent", Agent: true},
	{ID: 4, FirstName: "Dmitry", LastName: "Kuznetsov", Role: "agent", Agent: true},
	{ID: 5, FirstName: "Elena", LastName: "Sokolova", Role: "second line", Tech: true},
	{ID: 6, FirstName: "Ivan", LastName: "Morozov", Role: "no role"},
}

// Roles are the roles seeded on the first run, as the configuration's lists seed a
// webhook portal's: agents, second line and clients by user ID.
func Roles() (agents, tech, clients []int64) {
	for _, p := range People {
		if p.Agent {
			agents = append(agents, p.ID)
		}
		if p.Tech {
			tech = append(tech, p.ID)
		}
		if p.Client {
			clients = append(clients, p.ID)
		}
	}
	return agents, tech, clients
}

// Administrators are the portal's administrators; the first installs the application.
func Administrators() (ids []int64) {
	for _, p := range People {
		if p.Admin {
			ids = append(ids, p.ID)
		}
	}
	return ids
}

// PersonOf is the person with an ID.
func PersonOf(id int64) (Person, bool) {
	for _, p := range People {
		if p.ID == id {
			return p, true
		}
	}
	return Person{}, false
}
